"""Run sizes for ``radam-ref paper``: ``tiny`` (CI smoke test), ``default`` (2 CPU cores,
a few minutes) and ``full`` (the paper's simulation sizes, a bigger network; for a GPU)."""

from __future__ import annotations

import dataclasses

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


SIZES = {
    "tiny": PaperSize(
        name="tiny", rho_max=500, sim_trajectories=200, sim_iterations=300,
        lr_seeds=1, lr_epochs=2, lr_hidden=16, lr_batch=64, lr_warmup_steps=5,
        lr_adam_k=8, lr_train_limit=256,
    ),
    "default": PaperSize(
        name="default", rho_max=500, sim_trajectories=5000, sim_iterations=6000,
        lr_seeds=3, lr_epochs=20, lr_hidden=64, lr_batch=32, lr_warmup_steps=100,
        lr_adam_k=2000, lr_train_limit=None,
    ),
    "full": PaperSize(
        name="full", rho_max=500, sim_trajectories=5000, sim_iterations=6000,
        lr_seeds=5, lr_epochs=60, lr_hidden=256, lr_batch=32, lr_warmup_steps=100,
        lr_adam_k=2000, lr_train_limit=None,
    ),
}
