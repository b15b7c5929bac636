"""The per-step inputs of the fused element update, computed once per step on the host.

Every fused backend runs one function per element: ``radam_element`` in
``radam_element.cuh`` (CUDA kernels and the host C++ test harness) and its
line-by-line mirror ``_element`` in ``_numba_kernels.py`` (the CPU kernel of the
NumPy backend and of the torch backend's CPU path).
That function does only elementwise work.  Everything that depends on the step
number t and the config but not on the data is computed here, in Python floats
(float64), exactly as :func:`radam_ref.step` computes it, from the exact step
scalars of :func:`radam_ref.schedule` — never re-derived:

    flags                         scalars
    update   adaptive if ρ_t passes the threshold (Alg. 2 line 9), else momentum
             (line 14) or moments_only (before_rectification == "none")
    eps_after, eps_root           eps, eps_root, bias_correction2 = 1 − β₂ᵗ,
                                  sqrt_bias_correction2 = (1 − β₂ᵗ)^½      (line 10, §3.1)
    l2       g ← g + λθ           weight_decay = λ
    decay    θ ← θ − (αλ)θ        decay_factor = αλ      (decay_form "subtract", §5)
             θ ← θ·(1 − αλ)       decay_factor = 1 − αλ  (decay_form "multiply")
    nesterov                      bias_correction1_next = 1 − β₁ᵗ⁺¹
    maximize g ← −g
                                  beta1, one_minus_beta1, beta2, one_minus_beta2
                                  bias_correction1 = 1 − β₁ᵗ               (line 7)
                                  step_size = α r_t (adaptive, lines 11–12) or α (line 14)

The kernels cast each scalar once to their compute dtype, which is what
:func:`radam_ref.step` does when a Python float meets an array (NumPy's weak
scalars), so a kernel that performs the element function's operations in order
reproduces the spec operation for operation.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from radam_ref import RAdamConfig

__all__ = [
    "UPDATE_MOMENTS_ONLY",
    "UPDATE_MOMENTUM",
    "UPDATE_ADAPTIVE",
    "UPDATE_NAMES",
    "DECAY_NONE",
    "DECAY_SUBTRACT",
    "DECAY_MULTIPLY",
    "ElementFlags",
    "ElementScalars",
    "element_constants",
    "cached_element_constants",
    "all_variants",
]

#: θ unchanged; only the moments move (before_rectification == "none").
UPDATE_MOMENTS_ONLY = 0
#: θ ← θ − α m̂_t: SGD with bias-corrected momentum (Alg. 2, line 14).
UPDATE_MOMENTUM = 1
#: θ ← θ − α r_t m̂_t · D_t: the rectified adaptive update (Alg. 2, line 12).
UPDATE_ADAPTIVE = 2

UPDATE_NAMES = {UPDATE_MOMENTS_ONLY: "moments_only", UPDATE_MOMENTUM: "momentum",
                UPDATE_ADAPTIVE: "adaptive"}

#: No decoupled weight decay this step.
DECAY_NONE = 0
#: θ ← θ − (αλ)θ, with ``decay_factor`` = αλ (decay_form "subtract", the paper's).
DECAY_SUBTRACT = 1
#: θ ← θ·(1 − αλ), with ``decay_factor`` = 1 − αλ (decay_form "multiply", torch's).
DECAY_MULTIPLY = 2


class ElementFlags(NamedTuple):
    """Which lines of the element function run this step (all uniform over elements).

    Flags that cannot change the result of this step are normalised to False
    (e.g. ``eps_after`` when the update is not adaptive), so equal behaviour
    gives equal flags and one compiled kernel.
    """

    update: int      # UPDATE_MOMENTS_ONLY, UPDATE_MOMENTUM or UPDATE_ADAPTIVE
    eps_after: bool  # eps_placement == "after_bias_correction"
    eps_root: bool   # eps_root != 0: sqrt(· + eps_root)
    l2: bool         # g ← g + λθ
    decay: int       # DECAY_NONE, DECAY_SUBTRACT or DECAY_MULTIPLY
    nesterov: bool   # optax's Nesterov m̂
    maximize: bool   # g ← −g

    @property
    def variant(self) -> str:
        """The variant's name, e.g. ``adaptive_eps_after_l2``; kernels are named after it.

        ``decay`` names the subtractive decay, ``decay_multiply`` the multiplicative one.
        """
        parts = [UPDATE_NAMES[self.update]]
        for field in ("eps_after", "eps_root", "l2", "decay", "nesterov", "maximize"):
            if getattr(self, field):
                parts.append(field)
            if field == "decay" and self.decay == DECAY_MULTIPLY:
                parts.append("multiply")
        return "_".join(parts)

    def as_ints(self) -> tuple[int, ...]:
        """The flags as the seven ints of ``struct radam_flags`` (same order)."""
        return tuple(int(x) for x in self)


class ElementScalars(NamedTuple):
    """The data-independent numbers of one step, Python floats (float64).

    Field order is the order of ``struct radam_scalars`` in ``radam_element.cuh``
    and of the scalar array the NumPy kernels take.
    """

    beta1: float
    one_minus_beta1: float
    beta2: float
    one_minus_beta2: float
    weight_decay: float
    decay_factor: float
    bias_correction1: float
    bias_correction1_next: float
    sqrt_bias_correction2: float
    bias_correction2: float
    eps: float
    eps_root: float
    step_size: float


def element_constants(config: RAdamConfig, t: int) -> tuple[ElementFlags, ElementScalars]:
    """Flags and scalars of step ``t`` (1-based) under ``config``.

    Each scalar is the Python float :func:`radam_ref.step` uses for the same
    operation: ``1.0 - b1``, ``lr * r_t``, ``bias_correction2 ** 0.5``, … with
    r_t and the bias corrections from ``config.schedule(t)``.
    """
    sched = config.schedule(t)
    b1, b2 = config.betas
    lr, wd, mode = config.lr, config.weight_decay, config.weight_decay_mode
    moves = sched.rectified or config.before_rectification == "sgd_momentum"
    if sched.rectified:
        update = UPDATE_ADAPTIVE
    elif moves:
        update = UPDATE_MOMENTUM
    else:
        update = UPDATE_MOMENTS_ONLY
    adaptive = update == UPDATE_ADAPTIVE
    l2 = mode == "l2" and wd != 0.0
    decays = wd != 0.0 and (mode == "decoupled" or (mode == "decoupled_moving" and moves))
    subtract = config.decay_form == "subtract"
    decay = (DECAY_SUBTRACT if subtract else DECAY_MULTIPLY) if decays else DECAY_NONE
    # Nesterov changes m̂ only, which the moments-only update never reads.
    nesterov = config.nesterov and update != UPDATE_MOMENTS_ONLY
    flags = ElementFlags(
        update=update,
        eps_after=adaptive and config.eps_placement == "after_bias_correction",
        eps_root=adaptive and config.eps_root != 0.0,
        l2=l2,
        decay=decay,
        nesterov=nesterov,
        maximize=config.maximize,
    )
    bc1 = sched.bias_correction1
    bc1_next = config.schedule(t + 1).bias_correction1 if nesterov else bc1
    if adaptive:
        step_size = lr * sched.r_t
    elif update == UPDATE_MOMENTUM:
        step_size = lr
    else:
        step_size = 0.0
    scalars = ElementScalars(
        beta1=b1,
        one_minus_beta1=1.0 - b1,
        beta2=b2,
        one_minus_beta2=1.0 - b2,
        weight_decay=wd if l2 else 0.0,
        decay_factor=(lr * wd if subtract else 1.0 - lr * wd) if decays else 0.0,
        bias_correction1=bc1,
        bias_correction1_next=bc1_next,
        sqrt_bias_correction2=sched.bias_correction2 ** 0.5,
        bias_correction2=sched.bias_correction2,
        eps=config.eps,
        eps_root=config.eps_root,
        step_size=step_size,
    )
    return flags, scalars


@functools.lru_cache(maxsize=1024)
def _cached(config: RAdamConfig, t: int):
    return element_constants(config, t)


def cached_element_constants(config: RAdamConfig, t: int) -> tuple[ElementFlags, ElementScalars]:
    """:func:`element_constants`, cached per (config, t) for every CPU backend alike: a
    step at a new t computes the exact schedule once, however many backends or
    parameter groups share the config."""
    try:
        return _cached(config, t)
    except TypeError:  # an unhashable field: no cache
        return element_constants(config, t)


def all_variants() -> list[ElementFlags]:
    """Every distinct normalised flag combination (88): the kernel variants."""
    out = []
    for update in (UPDATE_MOMENTS_ONLY, UPDATE_MOMENTUM, UPDATE_ADAPTIVE):
        eps_choices = ((False, False), (False, True), (True, False), (True, True)) \
            if update == UPDATE_ADAPTIVE else ((False, False),)
        nesterov_choices = (False,) if update == UPDATE_MOMENTS_ONLY else (False, True)
        for eps_after, eps_root in eps_choices:
            for l2, decay in ((False, DECAY_NONE), (True, DECAY_NONE), (False, DECAY_SUBTRACT),
                              (False, DECAY_MULTIPLY)):
                for nesterov in nesterov_choices:
                    for maximize in (False, True):
                        out.append(ElementFlags(update, eps_after, eps_root, l2, decay,
                                                nesterov, maximize))
    return out
