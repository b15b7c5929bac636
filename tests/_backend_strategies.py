"""Hypothesis strategies and ulp comparisons shared by the backend tests.

The oracle of every backend test is :func:`radam_ref.step` (or a formula written
in the test); nothing here computes an expected value.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import radam_ref
from radam_ref import PROFILES, RAdamConfig

__all__ = ["configs", "beta2s", "layouts", "grads_for", "ulp_distance", "assert_ulp",
           "make_view"]

# β₂ across [0, 0.99999]: ≤ 0.6 (never rectified), just above 0.6 (ρ∞ barely above
# 4), and close to 1, plus anything in between.
beta2s = st.one_of(
    st.sampled_from([0.0, 0.3, 0.6, 0.6001, 0.65, 0.7, 0.75, 0.9, 0.99, 0.999, 0.9999, 0.99999]),
    st.floats(0.0, 0.99999),
)


@st.composite
def configs(draw, nonfinite: str = "propagate") -> RAdamConfig:
    """A profile, with a drawn subset of its options overridden."""
    profile = draw(st.sampled_from(sorted(PROFILES)))
    choices = {
        "lr": st.sampled_from([1e-3, 0.1, 1.0]) | st.floats(1e-6, 1.0),
        "betas": st.tuples(st.sampled_from([0.0, 0.5, 0.9, 0.99]) | st.floats(0.0, 0.999),
                           beta2s),
        "eps": st.sampled_from([0.0, 1e-8, 1e-3]),
        "weight_decay": st.sampled_from([0.0, 0.01, 0.5]),
        "threshold": st.sampled_from([4.0, 5.0]) | st.floats(4.0, 8.0),
        "comparison": st.sampled_from([">", ">="]),
        "eps_placement": st.sampled_from(radam_ref.EPS_PLACEMENTS),
        "eps_root": st.sampled_from([0.0, 1e-8, 1e-2]),
        "weight_decay_mode": st.sampled_from(radam_ref.WEIGHT_DECAY_MODES),
        "decay_form": st.sampled_from(radam_ref.DECAY_FORMS),
        "before_rectification": st.sampled_from(radam_ref.BEFORE_RECTIFICATION),
        "nesterov": st.booleans(),
        "maximize": st.booleans(),
    }
    keys = draw(st.sets(st.sampled_from(sorted(choices))))
    overrides = {key: draw(choices[key]) for key in sorted(keys)}
    # Always draw β₂ (so every example explores the β₂ axis) unless betas were drawn.
    if "betas" not in overrides:
        overrides["betas"] = (PROFILES[profile].options["betas"][0], draw(beta2s))
    return RAdamConfig.from_profile(profile, nonfinite=nonfinite, **overrides)


# One tensor's layout: shape and how params/grads are viewed.
VIEWS = ("contiguous", "strided", "transposed", "reversed")
shapes = st.lists(st.integers(0, 6), min_size=0, max_size=3).map(tuple)
layouts = st.lists(
    st.tuples(shapes, st.sampled_from(VIEWS), st.sampled_from(VIEWS)), min_size=1, max_size=4
)


def make_view(values: np.ndarray, view: str, fill, rng) -> tuple[np.ndarray, np.ndarray]:
    """``(base, view)``: ``view`` holds ``values`` and lives inside a larger or
    reordered ``base`` (filled with ``fill`` elsewhere) as the named kind of view."""
    shape = values.shape
    if view == "contiguous" or values.ndim == 0:
        base = values.copy()
        return base, base
    if view == "strided":
        base = np.full(shape[:-1] + (2 * shape[-1] + 1,), fill, dtype=values.dtype)
        out = base[..., 1::2]
    elif view == "transposed":
        base = np.full(shape[::-1], fill, dtype=values.dtype)
        out = base.T
    elif view == "reversed":
        base = np.full(shape, fill, dtype=values.dtype)
        out = base[..., ::-1]
    else:
        raise ValueError(view)
    out[...] = values
    return base, out


@st.composite
def grads_for(draw, shapes_, dtype):
    """Gradients for ``shapes_``: normal values at a drawn scale, some exact zeros."""
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([1.0, 1e-3, 1e3]) | st.floats(1e-6, 1e6))
    zero_fraction = draw(st.sampled_from([0.0, 0.0, 0.3, 1.0]))
    rng = np.random.default_rng(seed)
    out = []
    for shape in shapes_:
        g = np.where(rng.random(shape) < zero_fraction, 0.0, rng.standard_normal(shape) * scale)
        with np.errstate(over="ignore"):  # float16 gradients may overflow to ±inf
            out.append(np.asarray(g, dtype=dtype))
    return out


def _ordinal(x: np.ndarray) -> np.ndarray:
    """Float bit patterns mapped to int64s that count representable values
    (-0.0 and +0.0 both map to 0)."""
    x = np.asarray(x)
    itype = {2: np.int16, 4: np.int32, 8: np.int64}[x.dtype.itemsize]
    bits = x.view(itype).astype(np.int64)
    smallest = np.int64(np.iinfo(itype).min)
    return np.where(bits < 0, -(bits - smallest), bits)


def ulp_distance(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Number of representable values between ``actual`` and ``expected`` (same dtype,
    uint64); 0 where both are NaN, the largest uint64 where only one is."""
    actual = np.ascontiguousarray(actual)
    expected = np.ascontiguousarray(expected)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    a, b = _ordinal(actual), _ordinal(expected)
    same_sign = (a >= 0) == (b >= 0)
    with np.errstate(over="ignore"):
        distance = np.where(same_sign, np.abs(np.where(same_sign, a - b, 0)).astype(np.uint64),
                            np.abs(a).astype(np.uint64) + np.abs(b).astype(np.uint64))
    nan_a, nan_e = np.isnan(actual), np.isnan(expected)
    distance = np.where(nan_a & nan_e, np.uint64(0), distance)
    return np.where(nan_a ^ nan_e, np.iinfo(np.uint64).max, distance)


def assert_ulp(actual, expected, max_ulp: int, what: str) -> None:
    """``actual`` within ``max_ulp`` units in the last place of ``expected``."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} vs {expected.shape}"
    if actual.size == 0:
        return
    distance = ulp_distance(actual, expected)
    worst = int(np.argmax(distance))
    assert distance.flat[worst] <= max_ulp, (
        f"{what}: {int(distance.flat[worst])} ulp > {max_ulp} at flat index {worst}: "
        f"got {actual.flat[worst]!r}, spec {expected.flat[worst]!r}"
    )
