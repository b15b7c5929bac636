"""Matplotlib set-up shared by the figure modules: the Agg backend, small PNGs."""

from __future__ import annotations

__all__ = ["pyplot", "save_png"]

_DPI = 90


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path) -> None:
    """Write ``fig`` as a compact PNG (90 dpi, no metadata that changes per run) and close it."""
    fig.savefig(path, format="png", dpi=_DPI, bbox_inches="tight", metadata={"Software": None})
    pyplot().close(fig)
