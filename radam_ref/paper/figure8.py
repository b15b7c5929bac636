"""Figure 8: the exact variance of the adaptive rate (eq. 4), its first-order
approximation (eq. 6) and their absolute difference, for ρ ∈ {5, …, 500}, τ = 1 (§5.3)."""

from __future__ import annotations

import dataclasses

__all__ = ["Figure8Data", "compute", "plot"]


@dataclasses.dataclass(frozen=True)
class Figure8Data:
    """Figure 8's curves (NumPy float64 arrays over ``rho``).

    ``exact`` is eq. 4, ``approx`` eq. 6, ``difference`` = |exact − approx|."""

    rho: object
    exact: object
    approx: object
    difference: object

    def summary(self) -> dict:
        """Numbers the report quotes (plain floats)."""
        import numpy as np

        relative = self.difference / self.exact
        too_far = np.nonzero(relative >= 0.1)[0]
        if too_far.size == 0:
            within_from = float(self.rho[0])
        elif too_far[-1] + 1 < self.rho.size:
            within_from = float(self.rho[too_far[-1] + 1])
        else:
            within_from = None
        at = {int(r): i for i, r in enumerate(self.rho)}
        i5, ilast = at.get(5, 0), len(self.rho) - 1
        return {
            "rho_min": float(self.rho[0]),
            "rho_max": float(self.rho[-1]),
            "exact_at_5": float(self.exact[i5]),
            "approx_at_5": float(self.approx[i5]),
            "exact_at_max_rho": float(self.exact[ilast]),
            "approx_at_max_rho": float(self.approx[ilast]),
            "max_relative_difference": float(np.max(relative)),
            "relative_difference_at_max_rho": float(relative[ilast]),
            # Smallest ρ from which |eq4 − eq6| < eq4/10 for every larger ρ plotted.
            "rho_order_of_magnitude_from": within_from,
            "monotone_decreasing": bool(np.all(np.diff(self.exact) < 0)),
        }


def compute(rho_max: int = 500) -> Figure8Data:
    """Evaluate eq. 4 and eq. 6 at ρ = 5, 6, …, rho_max (integers, as the paper's axis)."""
    import numpy as np

    from radam_ref import theory

    if rho_max < 6:
        raise ValueError(f"rho_max must be an integer >= 6, got {rho_max!r}")
    rho = np.arange(5, rho_max + 1, dtype=np.float64)
    exact = theory.variance_exact(rho)
    approx = theory.variance_approx(rho)
    return Figure8Data(rho=rho, exact=exact, approx=approx, difference=np.abs(exact - approx))


def plot(data: Figure8Data, path) -> None:
    """Write Figure 8 as a PNG: three curves against ρ, log-scale variance axis."""
    from ._plotting import pyplot, save_png

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    ax.plot(data.rho, data.exact, label="eq. 4 (exact)", lw=2)
    ax.plot(data.rho, data.approx, "--", label="eq. 6 (first order)", lw=1.6)
    ax.plot(data.rho, data.difference, ":", label="|difference|", lw=1.6)
    ax.set_yscale("log")
    ax.set_xlabel(r"$\rho$")
    ax.set_ylabel(r"Var[$\psi$]  ($\tau = 1$)")
    ax.set_title("Figure 8: variance of the adaptive rate")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(frameon=False)
    save_png(fig, path)
