"""RAdamConfig: hyperparameters plus every axis on which RAdam implementations differ.

The axes (see SPEC-NOTES in the project docs and ``docs/spec.md``):

``threshold`` / ``comparison``
    The adaptive update is used when ``rho_t > threshold`` (paper, Alg. 2 line 9,
    threshold 4; torch uses 5) or ``rho_t >= threshold`` (authors' code, optax,
    TF-Addons, threshold 5).
``eps_placement``
    ``"before_bias_correction"``: adaptive rate sqrt(1 − β₂ᵗ) / (sqrt(v_t) + ε), as the
    paper writes ψ̂ in §3.1 and as the authors' code and torch compute it.
    ``"after_bias_correction"``: 1 / (sqrt(v_t / (1 − β₂ᵗ)) + ε), as optax and TF-Addons.
``eps_root``
    Added inside the square root (optax): sqrt(v_t + eps_root) before bias
    correction, sqrt(v̂_t + eps_root) after.  0 everywhere else.
``weight_decay_mode``
    ``"none"``; ``"l2"``: g ← g + λθ before the moments (torch default);
    ``"decoupled"``: θ ← θ(1 − αλ) on every step (Loshchilov & Hutter; paper §5;
    torch ``decoupled_weight_decay=True``; TF-Addons); ``"decoupled_moving"``: the
    same, but only on steps that move θ (authors' code).
``decay_form``
    How decoupled weight decay is written: ``"subtract"`` — θ ← θ − (αλ)θ (paper
    default; the authors' code, timm, TF-Addons), ``"multiply"`` — θ ← θ·(1 − αλ)
    (torch ``decoupled_weight_decay=True``, pytorch_optimizer).  Equal in exact
    arithmetic, not in floating point: in float32, 1 − αλ rounds to a multiple of
    2⁻²⁴, so for αλ = 1e-5 the multiplicative decay is off by up to 0.3% of itself,
    and the error compounds over a long run.  ``"subtract"`` rounds only the small
    product αλ, a relative error of 2⁻²⁴ of the decay.
``before_rectification``
    What happens while the variance is intractable: ``"sgd_momentum"`` — θ ← θ − α m̂_t
    (Alg. 2 line 14); ``"none"`` — θ unchanged (authors' code since 2021).
``nesterov``
    optax's Nesterov variant: m̂_t = β₁ m_t/(1 − β₁ᵗ⁺¹) + (1 − β₁) g_t/(1 − β₁ᵗ).
``maximize``
    Ascend instead of descend: g ← −g first (torch's ``maximize``).
``nonfinite``
    ``"propagate"`` (default): IEEE arithmetic, a NaN/inf gradient spreads into the
    state and θ exactly as the formulas say.  ``"raise"``: the step checks every
    gradient first and raises ``NonFiniteGradientError`` (a ``ValueError``) before
    anything changes (this reads the data, so it cannot run under ``jax.jit``).

``profile``
    The named profile (``radam_ref.PROFILES``) the config starts from: every field
    not passed explicitly takes that profile's value, so ``RAdamConfig(profile="torch")``
    equals ``RAdamConfig.from_profile("torch")``, and ``RAdamConfig(profile="torch",
    threshold=4.0)`` is torch's RAdam with the paper's threshold (still labelled
    ``"torch"``: the label names the starting point, the fields say what runs).
    Unknown names raise ``ValueError``.

Settings that are legal but almost surely mistakes emit :class:`RAdamConfigWarning`
(a ``RuntimeWarning``):

* α·λ ≥ 1 with decoupled weight decay: θ ← θ(1 − αλ) zeroes θ or flips its sign on
  every step;
* a threshold ≥ ρ∞ = 2/(1 − β₂) − 1 while ρ∞ > 4: ρ_t < ρ∞ for every t, so the
  update is never rectified although the paper's threshold 4 would rectify it.
  β₂ ≤ 0.6 (ρ∞ ≤ 4) does not warn: there RAdam *is* SGD with bias-corrected
  momentum for any threshold ≥ 4, the degeneration the paper describes (§4.2);
* lr > 1: an RAdam step moves each element by about α (r_t ≤ 1, |m̂/v̂| ≈ 1), so
  α > 1 is far outside every published setting (1e-4 … 1e-1).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import sys
from fractions import Fraction
from typing import Any

from ._schedule import COMPARISONS

__all__ = [
    "RAdamConfig",
    "EPS_PLACEMENTS",
    "WEIGHT_DECAY_MODES",
    "BEFORE_RECTIFICATION",
    "NONFINITE_POLICIES",
    "DECAY_FORMS",
    "RAdamConfigWarning",
]

EPS_PLACEMENTS = ("before_bias_correction", "after_bias_correction")
WEIGHT_DECAY_MODES = ("none", "l2", "decoupled", "decoupled_moving")
BEFORE_RECTIFICATION = ("sgd_momentum", "none")
NONFINITE_POLICIES = ("propagate", "raise")
DECAY_FORMS = ("subtract", "multiply")

#: The RAdamConfig fields that choose among published variants (the axes of this
#: module's docstring), as opposed to the hyperparameters α, β, ε and λ.
AXES = (
    "threshold",
    "comparison",
    "eps_placement",
    "eps_root",
    "weight_decay_mode",
    "decay_form",
    "before_rectification",
    "nesterov",
    "maximize",
    "nonfinite",
)


#: Values of the fields that no profile sets (see :class:`RAdamConfig`).
_BASE = dict(
    lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, threshold=4.0, comparison=">",
    eps_placement="before_bias_correction", eps_root=0.0, weight_decay_mode="decoupled",
    decay_form="subtract", before_rectification="sgd_momentum", nesterov=False, maximize=False,
    nonfinite="propagate",
)

#: Above this learning rate the config warns (see the module docstring).
HUGE_LR = 1.0


class RAdamConfigWarning(RuntimeWarning):
    """A legal RAdamConfig that is almost surely a mistake (see ``radam_ref._config``)."""


class _FromProfile:
    """Default of every RAdamConfig field: "the value of the config's profile"."""

    def __repr__(self) -> str:
        return "<from profile>"


_FROM_PROFILE: Any = _FromProfile()


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        value = float(value)
    except OverflowError:
        raise ValueError(f"Invalid {name} value: {value!r:.40} (too large for a float)") from None
    return value


def _nonnegative(name: str, value: Any) -> float:
    value = _real(name, value)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"Invalid {name} value: {value!r} (must be finite and >= 0)")
    return value + 0.0  # -0.0 is stored as 0.0


def _choice(name: str, value: Any, choices: tuple) -> Any:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"Invalid {name}: {value!r} (choose one of {choices})")
    return str(value)  # a str subclass (numpy.str_) becomes a plain str


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that points a warning raised in this module at the first
    frame outside radam_ref (and the dataclass machinery): the user's line."""
    frame, level = sys._getframe(2), 2  # the caller of the function that warns
    while frame is not None:
        name = frame.f_code.co_filename
        if not (name.startswith(_PACKAGE_DIR) or name.startswith("<") or name == dataclasses.__file__):
            break
        frame, level = frame.f_back, level + 1
    return level


@dataclasses.dataclass(frozen=True)
class RAdamConfig:
    """Hyperparameters of one RAdam step.  ``RAdamConfig()`` is the ``paper`` profile;
    ``RAdamConfig(profile=name, **fields)`` is profile ``name`` with ``fields`` overridden.

    Attributes:
        lr: step size α ≥ 0 (Alg. 2 input α_t; a schedule is the caller's business).
        betas: (β₁, β₂), each in [0, 1).  β₂ ≤ 0.6 gives ρ∞ ≤ 4: never rectified,
            RAdam is SGD with bias-corrected momentum (§4.2).
        eps: ε ≥ 0 added to the denominator of the adaptive rate.
        weight_decay: λ ≥ 0, applied per ``weight_decay_mode``.
        threshold: tractability threshold on ρ_t, ≥ 4 (paper 4, torch/optax 5).
        comparison: ``">"`` or ``">="``.
        eps_placement: ``"before_bias_correction"`` or ``"after_bias_correction"``.
        eps_root: ≥ 0, added inside the square root (optax).
        weight_decay_mode: ``"none"``, ``"l2"``, ``"decoupled"``, ``"decoupled_moving"``.
        decay_form: ``"subtract"`` (θ − (αλ)θ) or ``"multiply"`` (θ·(1 − αλ)).
        before_rectification: ``"sgd_momentum"`` or ``"none"``.
        nesterov: optax's Nesterov momentum variant.
        maximize: ascend the objective.
        nonfinite: ``"propagate"`` or ``"raise"``.
        profile: the named profile the config starts from: fields not passed
            explicitly take its values (default ``"paper"``); unknown names raise.

    Every axis is documented in this module's docstring.  The config is frozen and
    hashable, so it can be a static argument under ``jax.jit``.
    """

    lr: float = _FROM_PROFILE
    betas: tuple[float, float] = _FROM_PROFILE
    eps: float = _FROM_PROFILE
    weight_decay: float = _FROM_PROFILE
    threshold: float = _FROM_PROFILE
    comparison: str = _FROM_PROFILE
    eps_placement: str = _FROM_PROFILE
    eps_root: float = _FROM_PROFILE
    weight_decay_mode: str = _FROM_PROFILE
    decay_form: str = _FROM_PROFILE
    before_rectification: str = _FROM_PROFILE
    nesterov: bool = _FROM_PROFILE
    maximize: bool = _FROM_PROFILE
    nonfinite: str = _FROM_PROFILE
    profile: str = "paper"

    def __post_init__(self) -> None:
        s = object.__setattr__
        if not isinstance(self.profile, str):
            raise TypeError(f"profile must be a string, got {self.profile!r}")
        from ._profiles import PROFILES

        if self.profile not in PROFILES:
            raise ValueError(f"Unknown profile: {self.profile!r} (known: {sorted(PROFILES)})")
        chosen = PROFILES[self.profile].options
        for f in dataclasses.fields(self):
            if getattr(self, f.name) is _FROM_PROFILE:
                s(self, f.name, chosen.get(f.name, _BASE[f.name]))
        s(self, "lr", _nonnegative("learning rate", self.lr))
        s(self, "eps", _nonnegative("epsilon", self.eps))
        s(self, "eps_root", _nonnegative("eps_root", self.eps_root))
        s(self, "weight_decay", _nonnegative("weight_decay", self.weight_decay))
        betas = self.betas
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        checked = []
        for index, beta in enumerate(betas):
            beta = _real(f"beta parameter at index {index}", beta)
            if not (0.0 <= beta < 1.0):
                raise ValueError(
                    f"Invalid beta parameter at index {index}: {beta!r} (must be in [0, 1))"
                )
            checked.append(beta + 0.0)  # -0.0 is stored as 0.0
        s(self, "betas", tuple(checked))
        threshold = _real("threshold", self.threshold)
        if not (math.isfinite(threshold) and threshold >= 4.0):
            raise ValueError(
                f"Invalid threshold: {threshold!r} (must be finite and >= 4: "
                "r_t is real only for rho_t > 4)"
            )
        s(self, "threshold", threshold)
        for name, choices in (("comparison", COMPARISONS), ("eps_placement", EPS_PLACEMENTS),
                              ("weight_decay_mode", WEIGHT_DECAY_MODES), ("decay_form", DECAY_FORMS),
                              ("before_rectification", BEFORE_RECTIFICATION), ("nonfinite", NONFINITE_POLICIES)):
            s(self, name, _choice(name, getattr(self, name), choices))
        for flag in ("nesterov", "maximize"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{flag} must be a bool, got {getattr(self, flag)!r}")
        self._warn_if_suspicious()

    def _warn_if_suspicious(self) -> None:
        import warnings

        problems = []
        decay = self.lr * self.weight_decay
        if self.weight_decay_mode in ("decoupled", "decoupled_moving") and decay >= 1.0:
            problems.append(
                f"lr * weight_decay = {decay!r} >= 1 with decoupled weight decay: "
                "theta <- theta*(1 - lr*weight_decay) zeroes theta or flips its sign on every step"
            )
        b2 = self.beta2
        rho_inf = 2 / (1 - Fraction(b2)) - 1   # exact for the float β₂ (ρ_t < ρ∞ for every t)
        if rho_inf > 4 and self.threshold >= rho_inf:
            problems.append(
                f"threshold {self.threshold!r} >= rho_inf = {float(rho_inf)!r} (beta2 = {b2!r}): "
                "rho_t < rho_inf for every t, so the update is never rectified"
            )
        if self.lr > HUGE_LR:
            problems.append(
                f"learning rate {self.lr!r} > {HUGE_LR}: each RAdam step moves every element by about lr"
            )
        for problem in problems:
            warnings.warn(f"RAdamConfig: {problem}", RAdamConfigWarning, stacklevel=_caller_stacklevel())

    @property
    def beta1(self) -> float:
        """β₁, the first-moment decay."""
        return self.betas[0]

    @property
    def beta2(self) -> float:
        """β₂, the second-moment decay."""
        return self.betas[1]

    def replace(self, **overrides: Any) -> "RAdamConfig":
        """A copy with ``overrides`` applied (validated like the constructor)."""
        unknown = set(overrides) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(
                f"unknown RAdamConfig option(s): {sorted(unknown)!r} "
                f"(options: {[f.name for f in dataclasses.fields(self)]})"
            )
        return dataclasses.replace(self, **overrides)

    @classmethod
    def from_profile(cls, name: str = "paper", **overrides: Any) -> "RAdamConfig":
        """Build the named profile (see ``radam_ref.PROFILES``) with ``overrides``.

        Example: ``RAdamConfig.from_profile("torch", lr=1e-2, weight_decay=0.1)``.
        """
        from ._profiles import PROFILES

        if name not in PROFILES:
            raise ValueError(f"Unknown profile: {name!r} (known: {sorted(PROFILES)})")
        return PROFILES[name].config().replace(**overrides)

    def schedule(self, t: int):
        """The exact step scalars of this config at step ``t`` (see ``radam_ref.schedule``)."""
        from ._schedule import schedule

        return schedule(
            t,
            beta1=self.beta1,
            beta2=self.beta2,
            threshold=self.threshold,
            comparison=self.comparison,
        )
