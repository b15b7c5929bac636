"""Byte spans [low, high) of buffers a step writes or reads, and whether they meet.

The in-place kernels write θ, m, v while they read g, so no two written buffers may
share memory and no gradient may share memory with a written one.  Exact checks
(``np.shares_memory``) run when a launch plan is built; between builds, a reused
plan checks only byte spans, vectorised, so the cost per step is a few NumPy calls
whatever the number of tensors.  Spans that meet are a reason to rebuild (or, for
contiguous buffers, where spans meeting means sharing memory, to raise).
"""

from __future__ import annotations

import numpy as np

__all__ = ["first_overlap", "reads_written"]


def first_overlap(lows, highs):
    """Positions (i, j) in the input of two non-empty spans that meet, or None."""
    lows, highs = np.asarray(lows, np.int64), np.asarray(highs, np.int64)
    keep = np.flatnonzero(highs > lows)
    order = keep[np.argsort(lows[keep], kind="stable")]
    meet = np.flatnonzero(lows[order[1:]] < np.maximum.accumulate(highs[order])[:-1])
    if not meet.size:
        return None
    j = int(order[meet[0] + 1])
    i = int(order[: meet[0] + 1][np.argmax(highs[order[: meet[0] + 1]] > lows[j])])
    return i, j


def reads_written(lows, highs, read_lows, read_highs) -> np.ndarray:
    """Per read span, whether it meets one of the written spans ``lows``/``highs``
    (sorted by low and disjoint, as :func:`first_overlap` leaves them)."""
    read_lows = np.asarray(read_lows, np.int64)
    read_highs = np.asarray(read_highs, np.int64)
    if not len(lows):
        return np.zeros(read_lows.shape, bool)
    k = np.searchsorted(lows, read_highs, side="left") - 1
    return (read_highs > read_lows) & (k >= 0) & (np.asarray(highs)[np.maximum(k, 0)] > read_lows)
