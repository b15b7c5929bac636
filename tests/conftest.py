"""Shared test set-up: Hypothesis profiles and the array-namespace fixture.

Hypothesis profiles (select with HYPOTHESIS_PROFILE):
  ci        (default) few examples per property; keeps the suite within the CI budget.
  thorough  >= 500 examples per property.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=False,
    print_blob=True,
)
settings.register_profile(
    "thorough",
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# --------------------------------------------------------------------------- #
# Array namespaces under test.  Each entry builds (xp_name, xp, make_array) where
# make_array(numpy_array) -> array of that namespace (on its test device).
# --------------------------------------------------------------------------- #


def _namespaces():
    import numpy as np

    out = []

    def np_readonly(a):
        a = np.array(a, copy=True)
        a.flags.writeable = False
        return a

    out.append(("numpy", "numpy", np_readonly))
    try:
        import array_api_strict as xps

        out.append(("array_api_strict", "array_api_strict", lambda a: xps.asarray(a)))
        out.append((
            "array_api_strict-device1",
            "array_api_strict",
            lambda a: xps.asarray(a, device=xps.Device("device1")),
        ))
    except ImportError:
        pass
    try:
        import torch

        out.append(("torch", "torch", lambda a: torch.asarray(np.array(a, copy=True))))
    except ImportError:
        pass
    try:
        import jax

        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        out.append(("jax", "jax", lambda a: jnp.asarray(a)))
    except ImportError:
        pass
    return out


NAMESPACES = _namespaces()


@pytest.fixture(params=NAMESPACES, ids=[n[0] for n in NAMESPACES])
def xp_case(request):
    """(name, to_array) for every installed namespace, including a read-only NumPy
    (proves nothing writes into its inputs) and array-api-strict's non-default device."""
    name, _, to_array = request.param
    return name, to_array
