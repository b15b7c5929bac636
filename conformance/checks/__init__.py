"""The named checks, in report order (see :mod:`.base` for the verdicts)."""

from . import trajectory, threshold, groups, state, gradients, horizon, precision  # noqa: F401
from . import side_effects, autodiff, complex_params, arithmetic  # noqa: F401
from .base import CHECKS, VERDICTS, Check, CheckResult, Context, render_repro

_ORDER = (
    "arithmetic", "trajectories", "threshold", "degeneration", "param_groups", "state_dict", "maximize",
    "weight_decay_modes", "eps_zero", "grad_none", "zero_grads", "long_horizon", "float32",
    "low_precision", "side_effects", "autodiff", "complex",
)
_ordered = {name: CHECKS[name] for name in _ORDER}
CHECKS.clear()
CHECKS.update(_ordered)

__all__ = ["CHECKS", "VERDICTS", "Check", "CheckResult", "Context", "render_repro"]
