"""Robustness to the learning rate (§5.1 Figure 6, §5.2 Figure 7, §3.1 controls), small.

The paper trains ResNet-20 on CIFAR-10 with learning rates {0.1, 0.03, 0.01, 0.003}
and reports that RAdam's test-accuracy curves nearly coincide while Adam's and SGD's
depend on the learning rate (Figure 6), and that Adam with warmup is more sensitive
than RAdam (Figure 7).  This module runs the same protocol at a size that fits two
CPU cores: a two-hidden-layer ReLU MLP on scikit-learn's bundled 8×8 digits
(1797 images, shipped inside the package: nothing is downloaded), a fixed stratified
70/30 train/test split, cross-entropy, minibatch SGD-style training.

Optimizers (all β₁ = 0.9, β₂ = 0.999 where they apply; no weight decay):

    SGD          torch.optim.SGD, momentum 0.9 (the paper's SGD setting, App. B.2)
    Adam         eq. 1 with §2's ψ̂ (ε = 1e-8 before bias correction): PaperAdam
    Adam-warmup  the same with α_t = α·min(t, T_w)/T_w (§2, §4.3)
    Adam-2k      §3.1: the first k steps update only v (θ and m frozen)
    Adam-eps     §3.1: ε = 1e-4
    RAdam        this project's torch backend, profile "paper" (Algorithm 2)

Each (optimizer, learning rate, seed) run uses the same initial weights and the same
minibatch order for a given seed (Adam-2k's k extra minibatches come from a separate
stream).  Test accuracy is measured after every epoch.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable

__all__ = ["OPTIMIZERS", "TRACKED_STEPS", "LRExperimentResult", "load_data", "make_optimizer", "train_one", "run", "plot"]

#: Optimizer names, in the order tables and figures list them.
OPTIMIZERS = ("SGD", "Adam", "Adam-warmup", "Adam-2k", "Adam-eps", "RAdam")

#: Number of first regular updates whose size max |Δθ|/α is recorded.
TRACKED_STEPS = 10


@dataclasses.dataclass(frozen=True)
class LRExperimentResult:
    """Test-accuracy curves of every run.

    Attributes:
        learning_rates, optimizers, seeds: the grid.
        epochs, hidden, batch, warmup_steps, adam_k, train_size, test_size: settings.
        curves: {(optimizer, lr): list over seeds of per-epoch test accuracy (floats)}.
        diverged: {(optimizer, lr): number of seeds whose loss became non-finite}.
        first_steps: {(optimizer, lr): list over seeds of max |Δθ|/α over the first
            :data:`TRACKED_STEPS` regular updates (the size of the early steps in units
            of the nominal learning rate; Adam's first step is exactly 1)}.
    """

    learning_rates: tuple
    optimizers: tuple
    seeds: tuple
    epochs: int
    hidden: int
    batch: int
    warmup_steps: int
    adam_k: int
    train_size: int
    test_size: int
    curves: dict
    diverged: dict
    first_steps: dict = dataclasses.field(default_factory=dict)

    def first_steps_markdown(self) -> str:
        """Max |Δθ|/α over the first updates, mean over seeds, one row per optimizer."""
        head = "| optimizer | " + " | ".join(f"lr = {lr:g}" for lr in self.learning_rates) + " |"
        rows = [head, "|---|" + "---|" * len(self.learning_rates)]
        for name in self.optimizers:
            cells = []
            for lr in self.learning_rates:
                values = self.first_steps.get((name, lr), [])
                cells.append(f"{sum(values) / len(values):.3g}" if values else "–")
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(rows)

    def final_stats(self) -> dict:
        """{(optimizer, lr): (mean, std, n)} of the final test accuracy over seeds
        (std with correction 1; 0 for a single seed)."""
        import statistics

        out = {}
        for key, runs in self.curves.items():
            finals = [curve[-1] for curve in runs]
            std = statistics.stdev(finals) if len(finals) > 1 else 0.0
            out[key] = (statistics.fmean(finals), std, len(finals))
        return out

    def spread(self) -> dict:
        """{optimizer: max − min over learning rates of the mean final test accuracy}."""
        stats = self.final_stats()
        out = {}
        for name in self.optimizers:
            means = [stats[(name, lr)][0] for lr in self.learning_rates]
            out[name] = max(means) - min(means)
        return out

    def table_markdown(self) -> str:
        """Final test accuracy (%) as mean ± std over seeds, one row per optimizer."""
        stats = self.final_stats()
        head = "| optimizer | " + " | ".join(f"lr = {lr:g}" for lr in self.learning_rates) + " | spread |"
        rule = "|---|" + "---|" * len(self.learning_rates) + "---|"
        rows = [head, rule]
        spread = self.spread()
        for name in self.optimizers:
            cells = []
            for lr in self.learning_rates:
                mean, std, _ = stats[(name, lr)]
                mark = "†" if self.diverged.get((name, lr)) else ""
                cells.append(f"{100 * mean:.1f} ± {100 * std:.1f}{mark}")
            rows.append(f"| {name} | " + " | ".join(cells) + f" | {100 * spread[name]:.1f} |")
        return "\n".join(rows)

    def table_csv(self) -> str:
        stats = self.final_stats()
        lines = ["optimizer,lr,mean_test_accuracy,std_test_accuracy,seeds,diverged_seeds"]
        for name in self.optimizers:
            for lr in self.learning_rates:
                mean, std, n = stats[(name, lr)]
                lines.append(f"{name},{lr:g},{mean:.6f},{std:.6f},{n},{self.diverged.get((name, lr), 0)}")
        return "\n".join(lines) + "\n"


def load_data(train_limit: int | None = None, device="cpu"):
    """Digits as float32 tensors ((x_train, y_train), (x_test, y_test)), pixels / 16.

    Split: stratified, 30 % test, ``random_state=0`` (fixed across runs)."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    features, labels = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        features / 16.0, labels, test_size=0.3, random_state=0, stratify=labels
    )
    if train_limit is not None:
        x_train, y_train = x_train[:train_limit], y_train[:train_limit]

    def as_tensors(x, y):
        return (torch.as_tensor(x, dtype=torch.float32, device=device),
                torch.as_tensor(y, dtype=torch.long, device=device))

    return as_tensors(x_train, y_train), as_tensors(x_test, y_test)


def _make_model(hidden: int, seed: int, device):
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(64, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, 10),
    ).to(device)


def make_optimizer(name: str, params, lr: float, *, adam_k: int = 2000):
    """The optimizer called ``name`` (see :data:`OPTIMIZERS`) at learning rate ``lr``.

    Adam-warmup's schedule is applied by :func:`train_one`, not here."""
    import torch

    from .adam_variants import PaperAdam

    if name == "SGD":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name in ("Adam", "Adam-warmup"):
        return PaperAdam(params, lr=lr)
    if name == "Adam-2k":
        return PaperAdam(params, lr=lr, v_only_steps=adam_k)
    if name == "Adam-eps":
        return PaperAdam(params, lr=lr, eps=1e-4)
    if name == "RAdam":
        from radam_ref.backends.torch import RAdam

        return RAdam(params, lr=lr, profile="paper")
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def _accuracy(model, x, y) -> float:
    import torch

    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def train_one(name: str, lr: float, seed: int, data, *, epochs: int, hidden: int, batch: int,
              warmup_steps: int, adam_k: int, device="cpu",
              track_steps: int = TRACKED_STEPS) -> tuple[list, bool, list]:
    """Train one model; returns (test accuracy after each epoch, diverged, step sizes).

    ``step sizes``: max over all weights of |Δθ|/lr for each of the first
    ``track_steps`` regular updates (Adam-2k's second-moment-only steps excluded).
    A run whose training loss becomes non-finite stops; its remaining epochs repeat
    the accuracy measured at that point."""
    import math

    import torch

    from radam_ref import theory

    (x_train, y_train), (x_test, y_test) = data
    model = _make_model(hidden, seed, device)
    optimizer = make_optimizer(name, model.parameters(), lr, adam_k=adam_k)
    loss_fn = torch.nn.CrossEntropyLoss()
    n = x_train.shape[0]

    def minibatches(generator):
        while True:
            order = torch.randperm(n, generator=generator)
            for start in range(0, n - batch + 1 if n >= batch else 1, batch):
                yield order[start:start + batch].to(device)

    if name == "Adam-2k":  # §3.1: k steps that update only the second moment
        extra = minibatches(torch.Generator().manual_seed(10**6 + seed))
        for _ in range(adam_k):
            index = next(extra)
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x_train[index]), y_train[index]).backward()
            optimizer.step()

    stream = minibatches(torch.Generator().manual_seed(seed))
    steps_per_epoch = max(n // batch, 1)
    params = [p for p in model.parameters()]
    curve, step, diverged, step_sizes = [], 0, False, []
    for _ in range(epochs):
        if diverged:
            curve.append(curve[-1])
            continue
        for _ in range(steps_per_epoch):
            step += 1
            if name == "Adam-warmup":
                for group in optimizer.param_groups:
                    group["lr"] = lr * theory.warmup_factor(step, warmup_steps)
            index = next(stream)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x_train[index]), y_train[index])
            if not math.isfinite(float(loss.detach())):
                diverged = True
                break
            loss.backward()
            if step <= track_steps:
                before = [p.detach().clone() for p in params]
                optimizer.step()
                with torch.no_grad():
                    change = max(float((p - b).abs().max()) for p, b in zip(params, before))
                step_sizes.append(change / lr)
            else:
                optimizer.step()
        curve.append(_accuracy(model, x_test, y_test))
    return curve, diverged, step_sizes


@contextlib.contextmanager
def _torch_threads(count: int):
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run(*, learning_rates, seeds, epochs: int, hidden: int, batch: int, warmup_steps: int,
        adam_k: int, train_limit: int | None = None, optimizers=OPTIMIZERS, device="cpu",
        threads: int = 1, on_run: Callable[[str], None] | None = None) -> LRExperimentResult:
    """Run the grid optimizers × learning_rates × seeds.

    ``threads`` sets torch's intra-op threads for the run (restored afterwards):
    for a model this small, one thread per process is fastest."""
    for name in optimizers:
        if name not in OPTIMIZERS:
            raise ValueError(f"optimizers must be drawn from {OPTIMIZERS}, got {name!r}")
    for lr in learning_rates:
        if not (isinstance(lr, float) and lr > 0):
            raise ValueError(f"learning_rates must hold positive floats, got {lr!r}")
    for label, value in (("epochs", epochs), ("hidden", hidden), ("batch", batch),
                         ("warmup_steps", warmup_steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    data = load_data(train_limit, device)
    curves, diverged, first_steps = {}, {}, {}
    with _torch_threads(threads):
        for name in optimizers:
            for lr in learning_rates:
                runs, failures, sizes = [], 0, []
                for seed in seeds:
                    curve, failed, step_sizes = train_one(
                        name, lr, seed, data, epochs=epochs, hidden=hidden, batch=batch,
                        warmup_steps=warmup_steps, adam_k=adam_k, device=device,
                    )
                    runs.append(curve)
                    failures += int(failed)
                    sizes.append(max(step_sizes) if step_sizes else float("nan"))
                    if on_run is not None:
                        on_run(f"{name} lr={lr:g} seed={seed}")
                curves[(name, lr)] = runs
                diverged[(name, lr)] = failures
                first_steps[(name, lr)] = sizes
    return LRExperimentResult(
        learning_rates=tuple(learning_rates), optimizers=tuple(optimizers), seeds=tuple(seeds),
        epochs=epochs, hidden=hidden, batch=batch, warmup_steps=warmup_steps, adam_k=adam_k,
        train_size=int(data[0][0].shape[0]), test_size=int(data[1][0].shape[0]),
        curves=curves, diverged=diverged, first_steps=first_steps,
    )


def plot(result: LRExperimentResult, path) -> None:
    """Figure 6/7-style panels: mean test accuracy per epoch, one line per learning rate."""
    import numpy as np

    from ._plotting import pyplot, save_png

    plt = pyplot()
    count = len(result.optimizers)
    cols = min(3, count)
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.5 * rows), squeeze=False,
                             sharex=True, sharey=True)
    epochs = np.arange(1, result.epochs + 1)
    for i, name in enumerate(result.optimizers):
        ax = axes[i // cols][i % cols]
        for lr in result.learning_rates:
            curves = np.asarray(result.curves[(name, lr)])
            mean = curves.mean(axis=0)
            line, = ax.plot(epochs, 100 * mean, lw=1.3, label=f"lr {lr:g}")
            if curves.shape[0] > 1:
                std = curves.std(axis=0, ddof=1)
                ax.fill_between(epochs, 100 * (mean - std), 100 * (mean + std),
                                color=line.get_color(), alpha=0.15, lw=0)
        ax.set_title(name, fontsize=10)
        ax.set_ylim(0, 100)
        ax.grid(True, alpha=0.25)
        if i % cols == 0:
            ax.set_ylabel("test accuracy (%)")
        if i // cols == rows - 1:
            ax.set_xlabel("epoch")
    for j in range(count, rows * cols):
        axes[j // cols][j % cols].axis("off")
    axes[0][0].legend(fontsize=7, frameon=False, loc="lower right")
    fig.suptitle(f"Test accuracy on digits, MLP {result.hidden}-{result.hidden}, "
                 f"mean ± std over {len(result.seeds)} seed(s)", fontsize=10)
    fig.tight_layout()
    save_png(fig, path)
