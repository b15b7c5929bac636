"""radam-ref: the reference implementation of RAdam (Liu et al., ICLR 2020).

The spec lives here and depends only on ``array-api-compat``: the same code runs on
NumPy, CuPy, PyTorch, JAX and array-api-strict.

- :func:`schedule` / :func:`schedule_array`: the exact step scalars ρ∞, ρ_t, r_t,
  1 − β₁ᵗ, 1 − β₂ᵗ.
- :func:`init` / :func:`step`: the pure functional step (Algorithm 2).
- :class:`RAdamConfig` and :data:`PROFILES`: every axis on which published
  implementations differ, as explicit options; ``RAdamConfig()`` is the paper,
  ``RAdamConfig(profile="torch")`` torch's RAdam.  Legal settings that are almost
  surely mistakes warn with :class:`RAdamConfigWarning`.
- :func:`optax_transform`: the spec as an optax ``GradientTransformation``.

Subpackages: ``radam_ref.backends`` (fast NumPy, CuPy and torch adapters, each
property-tested against this spec) and ``radam_ref.conformance`` (checks other
implementations against it).
"""

from ._config import (
    BEFORE_RECTIFICATION,
    DECAY_FORMS,
    EPS_PLACEMENTS,
    NONFINITE_POLICIES,
    WEIGHT_DECAY_MODES,
    RAdamConfig,
    RAdamConfigWarning,
)
from ._optax import optax_transform
from ._profiles import PROFILES, Profile
from ._schedule import COMPARISONS, ArraySchedule, StepSchedule, schedule, schedule_array
from ._step import RAdamState, init, step
from ._validation import NonFiniteGradientError

__version__ = "0.1.0"

__all__ = [
    "ArraySchedule",
    "BEFORE_RECTIFICATION",
    "COMPARISONS",
    "DECAY_FORMS",
    "EPS_PLACEMENTS",
    "NONFINITE_POLICIES",
    "NonFiniteGradientError",
    "PROFILES",
    "Profile",
    "RAdamConfig",
    "RAdamConfigWarning",
    "RAdamState",
    "StepSchedule",
    "WEIGHT_DECAY_MODES",
    "init",
    "optax_transform",
    "schedule",
    "schedule_array",
    "step",
]
