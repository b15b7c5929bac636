"""Byte-span overlap checks (``radam_ref.backends._spans``) against a brute-force
oracle, and the CuPy backend's per-step overlap check on stand-in arrays (it reads
only ``data.ptr`` and ``nbytes``, so it runs without CuPy or a GPU)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from radam_ref._tree import flatten
from radam_ref.backends import _spans
from radam_ref.backends import cupy as cupy_backend

spans = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 12)), max_size=12).map(
    lambda xs: [(low, low + size) for low, size in xs])


def _meet(a, b) -> bool:
    """Two half-open spans share a byte (empty spans share none)."""
    return a[0] < a[1] and b[0] < b[1] and max(a[0], b[0]) < min(a[1], b[1])


@given(spans)
def test_first_overlap_finds_a_meeting_pair_exactly_when_one_exists(xs):
    pair = _spans.first_overlap([x[0] for x in xs], [x[1] for x in xs])
    exists = any(_meet(xs[i], xs[j]) for i in range(len(xs)) for j in range(i + 1, len(xs)))
    assert (pair is not None) == exists
    if pair is not None:
        i, j = pair
        assert i != j and _meet(xs[i], xs[j])


@given(spans, spans)
def test_reads_written_flags_exactly_the_reads_that_meet_a_written_span(written, reads):
    written = [w for w in written if w[0] < w[1]]
    kept = []
    for w in sorted(written):  # disjoint and sorted, as the callers pass them
        if not kept or w[0] >= kept[-1][1]:
            kept.append(w)
    flags = _spans.reads_written(np.array([w[0] for w in kept], np.int64),
                                 np.array([w[1] for w in kept], np.int64),
                                 [r[0] for r in reads], [r[1] for r in reads])
    assert flags.tolist() == [any(_meet(r, w) for w in kept) for r in reads]


def _fake(ptr: int, nbytes: int):
    return SimpleNamespace(data=SimpleNamespace(ptr=ptr), nbytes=nbytes)


@pytest.mark.parametrize("case, message", [
    ("disjoint", None),
    ("params overlap", r"params\[0\] and params\[1\] share memory"),
    ("state.m is a param", r"share memory"),
    ("grad inside state.v", r"grads\[1\] shares memory"),
])
def test_the_cupy_backend_refuses_overlapping_buffers_on_every_step(case, message):
    """Found: the CuPy backend checked no overlap at all (its cached signature
    ignores pointers), so a gradient aliasing a parameter or state array, or two
    overlapping parameters, went to the kernel."""
    p = [_fake(0, 400), _fake(1000, 400)]
    g = [_fake(5000, 400), _fake(6000, 400)]
    m = [_fake(2000, 400), _fake(2400, 400)]
    v = [_fake(3000, 400), _fake(3400, 400)]
    if case == "params overlap":
        p[1] = _fake(200, 400)
    elif case == "state.m is a param":
        m[0] = p[1]
    elif case == "grad inside state.v":
        g[1] = _fake(3500, 100)
    treedef = flatten([0, 0])[1]
    if message is None:
        cupy_backend._check_disjoint(treedef, p, g, m, v)
    else:
        with pytest.raises(ValueError, match=message):
            cupy_backend._check_disjoint(treedef, p, g, m, v)
