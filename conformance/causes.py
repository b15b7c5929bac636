"""The cause catalogue: every cause the suite can name for a finding.

Each :class:`Cause` has a stable ``id`` (written into JSON reports), a one-line
``text`` (what the report says) and the ``kind`` of evidence behind it:

``axis``       the target follows another value of one of the spec's axes
               (SPEC-NOTES: threshold, comparison, ε placement, weight-decay mode,
               decay form, behaviour before rectification, Nesterov momentum);
``precision``  the target computes some quantity in lower precision than its
               parameters (replayed by an oracle that rounds that quantity);
``defect``     a modelled implementation defect (replayed by an oracle with the
               defect, or observed directly: an input written, a group's
               hyperparameter applied to another group);
``formula``    a one-term change to the update found by :mod:`.formulas`;
``convention`` a different but legitimate convention (not a defect by itself:
               optax's complex |g|²).

A finding whose deviation none of these reproduces is ``"unexplained"``: the
suite says so rather than guess.

Two axes of the spec have no cause here because no check can observe them: the
threshold comparison (> vs ≥: ρ_t is never exactly 4 or 5 for a float64 β₂, see
:mod:`.fingerprint`) and the decay form (θ − (αλ)θ vs θ·(1 − αλ): one rounding of
θ per step, inside the tolerance of :mod:`.tolerance` in every dtype).  An
implementation that differs from its profile only there conforms.
"""

from __future__ import annotations

import dataclasses

__all__ = ["Cause", "CAUSES", "UNEXPLAINED", "cause", "cause_from_axis", "AXIS_CAUSES"]

UNEXPLAINED = "unexplained"


@dataclasses.dataclass(frozen=True)
class Cause:
    id: str
    kind: str
    text: str


_ENTRIES = (
    # -- single-axis differences of the spec -------------------------------------
    Cause("axis/threshold", "axis", "another rectification threshold (ρ_t > 4 vs ρ_t > 5 / ρ_t ≥ 5)"),
    Cause("axis/eps_placement", "axis", "ε placed on the other side of the bias correction of v"),
    Cause("axis/eps_root", "axis", "ε inside the square root (sqrt(v + ε))"),
    Cause("axis/weight_decay_mode", "axis", "another weight-decay mode (L2, decoupled every step, "
                                            "decoupled on moving steps only, none)"),
    Cause("axis/before_rectification", "axis", "another behaviour before rectification "
                                               "(SGD with bias-corrected momentum vs no update)"),
    Cause("axis/nesterov", "axis", "Nesterov momentum switched the other way"),
    Cause("axis/maximize", "axis", "maximize ignored or inverted: the step descends where it should ascend"),
    # -- arithmetic precision ----------------------------------------------------
    Cause("precision/float32_update", "precision",
          "float64 parameters are updated in float32 arithmetic (parameters, moments and update "
          "rounded to float32, written back as float64)"),
    Cause("precision/float32_moments", "precision", "the moments m and v are kept in float32"),
    Cause("precision/float32_step_scalars", "precision",
          "step scalars (1 − βᵗ, ρ_t, r_t) computed in float32"),
    Cause("precision/float32_hyperparameters", "precision", "hyperparameters rounded to float32"),
    Cause("precision/dtype_changed", "precision", "the parameters come back in another dtype"),
    # -- parameter groups --------------------------------------------------------
    Cause("groups/shared_cache", "defect",
          "a cache shared across parameter groups applies one group's hyperparameters to another"),
    Cause("groups/added_group_shares_state", "defect",
          "a group added after steps were taken shares an earlier group's buffers or step count"),
    Cause("groups/hyperparameter_ignored", "defect",
          "a group's own hyperparameter is ignored (another group's, or the constructor's, is used)"),
    Cause("groups/step_per_group", "defect", "a step counter kept per group rather than per parameter"),
    # -- weight decay ------------------------------------------------------------
    Cause("weight_decay/ignored", "defect", "weight decay silently ignored in this mode"),
    # -- inputs ------------------------------------------------------------------
    Cause("inputs/grad_modified", "defect", "the step modifies the gradient in place"),
    Cause("inputs/grad_modified_maximize", "defect",
          "maximize negates the gradient in place (p.grad comes back negated)"),
    Cause("inputs/grad_modified_weight_decay", "defect",
          "weight decay is added to the gradient in place (p.grad comes back with λθ added)"),
    Cause("inputs/input_modified", "defect", "the step writes into an input it must not (parameters or state "
                                             "of a functional step)"),
    # -- complex -----------------------------------------------------------------
    Cause("complex/imag_zeroed", "defect",
          "the imaginary part of complex parameters is dropped or zeroed: this destroys data"),
    Cause("complex/abs_square_convention", "convention",
          "complex numbers treated as one coordinate (v from |g|² = g·conj(g)): a different, legitimate "
          "convention (optax), not the spec's real-pair view"),
    # -- step counter and state --------------------------------------------------
    Cause("state/step_counter", "defect", "the step counter is kept in a narrow type and stops (float16: "
                                          "at 2048; bfloat16: at 256)"),
    Cause("state/not_restored", "defect", "saving or restoring the state loses part of it (a resumed run "
                                          "restarts moments or the step counter, or saving corrupts the live "
                                          "state)"),
    Cause("gradients/none_not_skipped", "defect", "a parameter whose gradient is None is still updated "
                                                  "or counts a step"),
    Cause("gradients/zero_skipped", "defect", "an all-zero gradient is treated as no gradient (step skipped)"),
    Cause("eps/substituted", "defect", "ε = 0 replaced by a nonzero ε (e.g. eps = eps or 1e-8)"),
    Cause("eps/nan_spreads", "defect", "a 0/0 in one element spreads NaN to elements whose gradients are nonzero"),
    Cause("autodiff/derivative", "defect", "the derivative of the step differs from the spec's"),
    # -- formula-level -----------------------------------------------------------
    Cause("formula/no_bias_correction_m", "formula", "no bias correction of m (1 − β₁ᵗ taken as 1)"),
    Cause("formula/no_bias_correction_v", "formula", "no bias correction of v (1 − β₂ᵗ taken as 1)"),
    Cause("formula/betas_swapped", "formula", "β₁ and β₂ swapped"),
    Cause("formula/step_ahead", "formula", "step scalars of step t + 1 used at step t (counter one ahead)"),
    Cause("formula/step_behind", "formula", "step scalars of step t − 1 used at step t (counter one behind)"),
    Cause("formula/r_not_sqrt", "formula", "the rectification term r_t without its square root (r_t²)"),
    Cause("formula/r_missing", "formula", "no rectification term (r_t taken as 1)"),
    Cause("formula/sqrt_v_missing", "formula", "v used without its square root"),
    Cause("formula/lr_squared", "formula", "the learning rate applied twice (α²)"),
    Cause("formula/rho_inf_off_by_one", "formula", "ρ∞ off by one (2/(1 − β₂) in place of 2/(1 − β₂) − 1)"),
    Cause("formula/rho_factor", "formula", "ρ_t without the factor 2 in 2tβ₂ᵗ/(1 − β₂ᵗ)"),
    Cause("formula/momentum_no_one_minus_beta", "formula", "m accumulated without the (1 − β₁) factor"),
    Cause("formula/v_no_one_minus_beta", "formula", "v accumulated without the (1 − β₂) factor"),
    Cause("formula/eps_zero_masked_nan", "formula",
          "ε = 0: an element whose gradients have all been 0 turns NaN before rectification (the adaptive "
          "term is computed for every element and masked by a product: (sqrt(v) + ε)/0 = 0/0, then 0·NaN)"),
    Cause("formula/sgd_uncorrected", "formula", "SGD steps before rectification use m without bias correction"),
    Cause("formula/decay_lr_missing", "formula", "decoupled decay θ·(1 − λ) without the learning rate"),
)

#: Every cause by id.
CAUSES: dict[str, Cause] = {c.id: c for c in _ENTRIES}

#: Cause id of each spec axis (for single-axis diagnoses).
AXIS_CAUSES = {
    "threshold": "axis/threshold",
    "eps_placement": "axis/eps_placement",
    "eps_root": "axis/eps_root",
    "weight_decay_mode": "axis/weight_decay_mode",
    "before_rectification": "axis/before_rectification",
    "nesterov": "axis/nesterov",
    "maximize": "axis/maximize",
}


def cause(cause_id: str) -> Cause:
    """The catalogue entry ``cause_id``; ValueError naming it if unknown."""
    try:
        return CAUSES[cause_id]
    except KeyError:
        raise ValueError(f"unknown cause id {cause_id!r} (see radam_ref.conformance.causes)") from None


def cause_from_axis(axis_text: str | None) -> str:
    """Best catalogue id for a free-text axis description (older code paths), or
    ``"unexplained"``.  Only exact diagnoses ("the target matches the spec with …")
    name a cause; a "closest is" guess stays unexplained."""
    if not axis_text or "matches the spec with" not in axis_text:
        if axis_text and "writes into an input" in axis_text:
            return "inputs/input_modified"
        return UNEXPLAINED
    detail = axis_text.split("matches the spec with", 1)[1]
    table = (
        ("threshold", "axis/threshold"), ("ε inside", "axis/eps_root"), ("ε ", "axis/eps_placement"),
        ("weight decay mode", "axis/weight_decay_mode"),
        ("before rectification", "axis/before_rectification"), ("nesterov", "axis/nesterov"),
        ("maximize", "axis/maximize"), ("float32", "precision/float32_step_scalars"),
        ("one ahead", "formula/step_ahead"), ("bias correction of m", "formula/no_bias_correction_m"),
        ("bias correction of v", "formula/no_bias_correction_v"), ("swapped", "formula/betas_swapped"),
    )
    for needle, cid in table:
        if needle in detail:
            return cid
    return UNEXPLAINED
