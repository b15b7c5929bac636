"""Named profiles: each fixes every axis of RAdamConfig to what one published
implementation does, and cites the source it follows.

``PROFILES`` maps a name to a :class:`Profile`; ``RAdamConfig.from_profile(name,
**overrides)`` builds its config.  The axes are explained in ``radam_ref._config``.

==================  =========  ===  ======================  ================  ==========  ==============
profile             threshold  cmp  eps placement           weight decay      decay form  before rect.
==================  =========  ===  ======================  ================  ==========  ==============
paper               4          >    before bias correction  decoupled         subtract    SGD momentum
authors             5          >=   before bias correction  decoupled_moving  subtract    none
torch               5          >    before bias correction  l2                multiply    SGD momentum
torch_decoupled     5          >    before bias correction  decoupled         multiply    SGD momentum
optax               5          >=   after (+ eps_root)      none              multiply    SGD momentum
tf_addons           5          >=   after bias correction   decoupled         subtract    SGD momentum
timm                5          >=   before bias correction  decoupled         subtract    SGD momentum
==================  =========  ===  ======================  ================  ==========  ==============

``decay form`` is how decoupled weight decay is written: ``subtract`` θ − (αλ)θ,
``multiply`` θ·(1 − αλ).  Equal in exact arithmetic; in float32 ``multiply`` rounds
1 − αλ to a multiple of 2⁻²⁴ (0.135% too much decay at αλ = 1e-5, compounding
over a run), ``subtract`` rounds only αλ.  The paper profile subtracts; profiles
that reproduce a peer keep the peer's form (torch multiplies; optax has no decay
of its own, its form only matters if weight decay is switched on).  Fields a
profile does not set keep the ``paper`` values (λ = 0, eps_root = 0, no Nesterov,
no maximize, non-finite values propagate).
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, Mapping

from ._config import RAdamConfig

__all__ = ["Profile", "PROFILES"]


@dataclasses.dataclass(frozen=True)
class Profile:
    """A named, cited choice of every RAdam axis.

    Attributes:
        name: the profile's name.
        source: where the behaviour comes from (paper section, file and class).
        doc: what the profile does, axis by axis, in one paragraph.
        options: the RAdamConfig fields it sets (the rest keep RAdamConfig defaults).
    """

    name: str
    source: str
    doc: str
    options: Mapping[str, Any]

    def __post_init__(self) -> None:
        # Read-only: RAdamConfig(profile=...) reads these for every config built.
        object.__setattr__(self, "options", types.MappingProxyType(dict(self.options)))

    def __reduce__(self):
        return (Profile, (self.name, self.source, self.doc, dict(self.options)))

    def config(self, **overrides: Any) -> RAdamConfig:
        """The profile's RAdamConfig, with ``overrides`` applied."""
        return RAdamConfig(**{**self.options, "profile": self.name}).replace(**overrides)


_PROFILES = [
    Profile(
        name="paper",
        source=(
            "Liu et al., 'On the Variance of the Adaptive Learning Rate and Beyond', "
            "ICLR 2020: Algorithm 2; eps as in the §3.1 expression for ψ̂; decoupled "
            "weight decay as stated in §5 (following Loshchilov & Hutter)."
        ),
        doc=(
            "Adaptive update when rho_t > 4 (Alg. 2 line 9); r_t·m̂_t·sqrt(1-β₂ᵗ)/(sqrt(v_t)+ε); "
            "otherwise θ -= α·m̂_t (line 14, SGD with bias-corrected momentum); "
            "θ -= (α·λ)·θ every step (decay_form 'subtract')."
        ),
        options=dict(
            lr=1e-3, betas=(0.9, 0.999), eps=1e-8, threshold=4.0, comparison=">",
            eps_placement="before_bias_correction", weight_decay_mode="decoupled",
            decay_form="subtract", before_rectification="sgd_momentum",
        ),
    ),
    Profile(
        name="authors",
        source=(
            "github.com/LiyuanLucasLiu/RAdam, radam/radam.py, class RAdam "
            "(degenerated_to_sgd=False, the default since 2021)."
        ),
        doc=(
            "Adaptive update when N_sma >= 5; denominator exp_avg_sq.sqrt() + eps with "
            "sqrt(1-β₂ᵗ) folded into the step size; no update at all before that; weight "
            "decay p -= lr·wd·p only on steps that update p."
        ),
        options=dict(
            lr=1e-3, betas=(0.9, 0.999), eps=1e-8, threshold=5.0, comparison=">=",
            eps_placement="before_bias_correction", weight_decay_mode="decoupled_moving",
            decay_form="subtract", before_rectification="none",
        ),
    ),
    Profile(
        name="torch",
        source="PyTorch torch/optim/radam.py, class RAdam (decoupled_weight_decay=False).",
        doc=(
            "Adaptive update when rho_t > 5.0; sqrt(1-β₂ᵗ)/(sqrt(v)+eps); SGD with "
            "bias-corrected momentum before; weight decay as L2 (grad += wd·param)."
        ),
        options=dict(
            lr=1e-3, betas=(0.9, 0.999), eps=1e-8, threshold=5.0, comparison=">",
            eps_placement="before_bias_correction", weight_decay_mode="l2",
            decay_form="multiply", before_rectification="sgd_momentum",
        ),
    ),
    Profile(
        name="torch_decoupled",
        source="PyTorch torch/optim/radam.py, class RAdam (decoupled_weight_decay=True).",
        doc="As 'torch', with param.mul_(1 - lr·wd) on every step instead of L2.",
        options=dict(
            lr=1e-3, betas=(0.9, 0.999), eps=1e-8, threshold=5.0, comparison=">",
            eps_placement="before_bias_correction", weight_decay_mode="decoupled",
            decay_form="multiply", before_rectification="sgd_momentum",
        ),
    ),
    Profile(
        name="optax",
        source="optax optax/_src/transform.py, scale_by_radam; optax.radam (alias.py).",
        doc=(
            "Adaptive update when ro >= threshold (5.0); r·m̂/(sqrt(v̂ + eps_root) + eps) "
            "with ε after bias correction; the bias-corrected momentum m̂ otherwise; no "
            "weight decay (chain optax.add_decayed_weights for that)."
        ),
        options=dict(
            lr=1e-3, betas=(0.9, 0.999), eps=1e-8, eps_root=0.0, threshold=5.0,
            comparison=">=", eps_placement="after_bias_correction",
            weight_decay_mode="none", decay_form="multiply", before_rectification="sgd_momentum",
        ),
    ),
    Profile(
        name="tf_addons",
        source=(
            "TensorFlow Addons tensorflow_addons/optimizers/rectified_adam.py, class "
            "RectifiedAdam (total_steps=0, amsgrad=False)."
        ),
        doc=(
            "Adaptive update when sma_t >= sma_threshold (5.0); r_t·m̂/(v̂ + ε) with "
            "v̂ = sqrt(v/(1-β₂ᵗ)); m̂ otherwise; decoupled weight decay added to the update "
            "on every step (var -= lr·(update + wd·var)); epsilon default 1e-7."
        ),
        options=dict(
            lr=1e-3, betas=(0.9, 0.999), eps=1e-7, threshold=5.0, comparison=">=",
            eps_placement="after_bias_correction", weight_decay_mode="decoupled",
            decay_form="subtract", before_rectification="sgd_momentum",
        ),
    ),
    Profile(
        name="timm",
        source="pytorch-image-models timm/optim/radam.py, class RAdam.",
        doc=(
            "Adaptive update when num_sma >= 5; denominator exp_avg_sq.sqrt() + eps; "
            "SGD with bias-corrected momentum before; p -= lr·wd·p on every step."
        ),
        options=dict(
            lr=1e-3, betas=(0.9, 0.999), eps=1e-8, threshold=5.0, comparison=">=",
            eps_placement="before_bias_correction", weight_decay_mode="decoupled",
            decay_form="subtract", before_rectification="sgd_momentum",
        ),
    ),
]

#: Every named profile, by name (read-only).
PROFILES: Mapping[str, Profile] = types.MappingProxyType({p.name: p for p in _PROFILES})
