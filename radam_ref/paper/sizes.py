"""Run sizes for ``radam-ref paper``: ``tiny`` (CI smoke test), ``default`` (2 CPU cores;
under an hour, most of it the Transformer runs: 24 at β₂ = 0.98 and the 15 of the
β₂ = 0.999 supplement) and ``full`` (the paper's simulation sizes, bigger networks; for a
GPU)."""

from __future__ import annotations

import dataclasses

from .warmup_experiment import WarmupSettings

__all__ = ["PaperSize", "SIZES", "LEARNING_RATES", "FIGURE9_MUS"]

#: §5.1 / Figure 6: "learning rates within a broad range (i.e., {0.1, 0.03, 0.01, 0.003})".
LEARNING_RATES = (0.1, 0.03, 0.01, 0.003)

#: The six means μ of g ~ N(μ, 1) for Figure 9.  §5.3's text does not list them
#: (they appear only in the figure's panels); these span zero-mean to |μ| ≫ σ.
FIGURE9_MUS = (0.0, 0.01, 0.1, 0.5, 1.0, 10.0)


@dataclasses.dataclass(frozen=True)
class PaperSize:
    """Every size knob of one run.

    Attributes:
        name: ``"tiny"``, ``"default"`` or ``"full"``.
        rho_max: Figure 8 plots ρ ∈ {5, …, rho_max} (the paper: 500).
        sim_trajectories, sim_iterations: Figure 9's simulation (paper: 5000 × 6000).
        lr_seeds: seeds per (optimizer, learning rate) (issue: 3).
        lr_epochs: training epochs of the learning-rate experiment.
        lr_hidden: width of the two hidden layers of the MLP.
        lr_batch: minibatch size.
        lr_warmup_steps: T_w of Adam with linear warmup.
        lr_adam_k: k of Adam-2k (§3.1: 2000 steps that update only the second moment).
        lr_train_limit: use only the first N training examples (None: all).
        tf: model and schedule of the Transformer warmup experiment (Figures 1–3).
        tf_seeds: seeds per (optimizer, learning rate) of that experiment.
        tf_learning_rates: its learning rates.
        tf_claim_lr: the learning rate its claims are read at.
        tf_controls_lrs: learning rates at which Adam-2k and Adam-eps run (a subset).
        tf_supplement_beta2s: further β₂ values at which all five optimizers run again, at
            ``tf_claim_lr`` only, with every other setting of ``tf`` unchanged (a supplement
            with its own claim rows; empty: none).
    """

    name: str
    rho_max: int
    sim_trajectories: int
    sim_iterations: int
    lr_seeds: int
    lr_epochs: int
    lr_hidden: int
    lr_batch: int
    lr_warmup_steps: int
    lr_adam_k: int
    lr_train_limit: int | None
    tf: WarmupSettings
    tf_seeds: int
    tf_learning_rates: tuple
    tf_claim_lr: float
    tf_controls_lrs: tuple
    tf_supplement_beta2s: tuple = ()


#: The default Transformer experiment, sized for two CPU cores: 4 post-LN layers,
#: d = 128, 300 updates; at lr 3e-3 Adam without warmup stalls while Adam with warmup
#: trains (found by trial; at 1e-2, with β₂ = 0.999 and T_w = 50, both stalled).
#: T_w = 100, Adam-2k's k = T_w/2 (the paper's 2000 : 4000), and β₂ = 1 − 2/T_w = 0.98:
#: the paper ties β₂ to the warmup length the same way (App. B.3: 2/(1 − β₂) = 4000,
#: β₂ = 0.9995), and 0.98 is fairseq's usual Transformer setting.  The supplement reruns
#: all five optimizers at the claim lr with β₂ = 0.999, the paper's default for Adam and
#: RAdam (§5): the rectification r_t rises more slowly there (Algorithm 2), so whether RAdam
#: avoids the failure depends on β₂ at this size — both settings are reported.
_TF_DEFAULT = WarmupSettings(layers=4, width=128, heads=4, context=64, batch=16, steps=300,
                             warmup_steps=100, adam_k=50, beta2=0.98, eval_every=25,
                             eval_windows=64, hist_steps=30)

SIZES = {
    "tiny": PaperSize(
        name="tiny", rho_max=500, sim_trajectories=200, sim_iterations=300,
        lr_seeds=1, lr_epochs=2, lr_hidden=16, lr_batch=64, lr_warmup_steps=5,
        lr_adam_k=8, lr_train_limit=256,
        tf=WarmupSettings(layers=2, width=32, heads=2, context=16, batch=4, steps=12,
                          warmup_steps=4, adam_k=2, beta2=0.98, eval_every=6, eval_windows=8,
                          hist_steps=5, max_chars=20_000),
        tf_seeds=1, tf_learning_rates=(3e-3,), tf_claim_lr=3e-3, tf_controls_lrs=(3e-3,),
        tf_supplement_beta2s=(0.999,),
    ),
    "default": PaperSize(
        name="default", rho_max=500, sim_trajectories=5000, sim_iterations=6000,
        lr_seeds=3, lr_epochs=20, lr_hidden=64, lr_batch=32, lr_warmup_steps=100,
        lr_adam_k=2000, lr_train_limit=None,
        tf=_TF_DEFAULT, tf_seeds=3, tf_learning_rates=(1e-3, 3e-3), tf_claim_lr=3e-3,
        tf_controls_lrs=(3e-3,), tf_supplement_beta2s=(0.999,),
    ),
    "full": PaperSize(
        name="full", rho_max=500, sim_trajectories=5000, sim_iterations=6000,
        lr_seeds=5, lr_epochs=60, lr_hidden=256, lr_batch=32, lr_warmup_steps=100,
        lr_adam_k=2000, lr_train_limit=None,
        tf=WarmupSettings(layers=6, width=256, heads=4, context=128, batch=32, steps=4000,
                          warmup_steps=400, adam_k=200, beta2=0.995, eval_every=100,
                          eval_windows=512, hist_steps=100),
        tf_seeds=5, tf_learning_rates=(3e-4, 1e-3, 3e-3), tf_claim_lr=1e-3,
        tf_controls_lrs=(3e-4, 1e-3, 3e-3), tf_supplement_beta2s=(0.999,),
    ),
}
