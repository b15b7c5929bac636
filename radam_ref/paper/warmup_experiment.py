"""Transformers without warmup (§1 and §3, Figures 1–3, the §3.1 controls), small.

The paper's motivating result: a post-LN Transformer trained by Adam *without* warmup
ends at a much worse training loss than with warmup (Figure 1, IWSLT'14 De-En:
perplexity ≈ 500 vs < 10); within the first ten updates its gradient distribution is
"distorted to have a mass center in relatively small values" (Figure 2); two controls
that reduce the variance of the adaptive rate — Adam-2k (2000 extra steps that update
only v) and Adam-eps (ε = 1e-4) — avoid the failure and the distortion (§3.1, Figure 3),
Adam-eps at the price of slower training; RAdam trains without warmup (§5.2, Table 3).

Here the same five optimizers train :class:`~radam_ref.paper.transformer.PostLNLanguageModel`,
a character-level post-LN Transformer language model, on the standard library's
docstrings (:mod:`radam_ref.paper.text_corpus`) — next-token prediction with a causal
decoder, which is what the paper's NMT decoder and its language models (§5.1) optimise.

Optimizers (β₁ = 0.9, β₂ from the run settings; no weight decay, no gradient clipping):

    Adam         eq. 1 with §2's ψ̂ (ε = 1e-8 before bias correction): PaperAdam
    Adam-warmup  the same with α_t = α·min(t, T_w)/T_w (§2, §4.3)
    RAdam        this project's torch backend, profile "paper" (Algorithm 2), no warmup
    Adam-2k      §3.1: k extra steps first that update only v (θ and m frozen); k = T_w/2
                 as in the paper (2000 against fairseq's 4000 warmup updates)
    Adam-eps     §3.1: ε = 1e-4

Every (optimizer, learning rate, seed) run starts from the same weights and sees the same
minibatches for a given seed (Adam-2k's k extra minibatches come from a separate
stream).  Recorded per run: the training loss of every update, the validation loss every
``eval_every`` updates on a fixed set of validation windows, and, for the first
``hist_steps`` regular updates, the histogram of log₁₀|g| over every gradient entry of
the model (Figure 2), taken before the update is applied.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

__all__ = ["OPTIMIZERS", "HIST_EDGES", "WarmupSettings", "WarmupResult", "make_optimizer",
           "train_one", "run", "plot_curves", "plot_histograms", "supplement_key"]

#: Optimizer names, in the order tables and figures list them.
OPTIMIZERS = ("Adam", "Adam-warmup", "RAdam", "Adam-2k", "Adam-eps")

#: Bin edges of the |gradient| histograms, in log₁₀ units: 1e-14 … 1e2, 64 bins.
#: Values outside (exact zeros included) are counted in the first or last bin.
HIST_EDGES = tuple(-14.0 + 0.25 * i for i in range(65))

#: Offset of the seed of the validation windows (the same windows for every run).
_VALID_SEED = 20_191_008
#: Offset of the seed of Adam-2k's extra minibatches.
_EXTRA_SEED = 10**6


@dataclasses.dataclass(frozen=True)
class WarmupSettings:
    """Model and schedule of one experiment.

    Attributes:
        layers, width, heads, context: the model (context = training window length).
        batch: windows per minibatch.
        steps: regular updates per run.
        warmup_steps: T_w of Adam-warmup.
        adam_k: k of Adam-2k.
        beta2: β₂ of every optimizer (β₁ = 0.9).
        eval_every: validation loss every this many updates (and after the last).
        eval_windows: validation windows (fixed across runs).
        hist_steps: first regular updates whose |g| histogram is recorded.
        max_chars: corpus prefix used (None: all of it).
    """

    layers: int
    width: int
    heads: int
    context: int
    batch: int
    steps: int
    warmup_steps: int
    adam_k: int
    beta2: float
    eval_every: int
    eval_windows: int
    hist_steps: int
    max_chars: int | None = None

    def __post_init__(self):
        for field in ("layers", "width", "heads", "context", "batch", "steps", "warmup_steps",
                      "eval_every", "eval_windows", "hist_steps"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field} must be a positive integer, got {value!r}")
        if isinstance(self.adam_k, bool) or not isinstance(self.adam_k, int) or self.adam_k < 0:
            raise ValueError(f"adam_k must be an integer >= 0, got {self.adam_k!r}")
        if not (0.0 < self.beta2 < 1.0):
            raise ValueError(f"beta2 must be in (0, 1), got {self.beta2!r}")


@dataclasses.dataclass(frozen=True)
class WarmupResult:
    """Every curve and histogram of the grid optimizers × learning rates × seeds.

    Attributes:
        settings: the :class:`WarmupSettings`.
        learning_rates, optimizers, seeds: the grid.
        claim_lr: the learning rate the claims are read at (one of ``learning_rates``).
        corpus: {"python", "documents", "files", "vocabulary", "train_chars", "valid_chars",
            "unigram_entropy"}.
        train_loss: {(optimizer, lr): list over seeds of the per-update training loss}
            (NaN after a non-finite loss).
        valid_steps: the updates after which the validation loss was measured.
        valid_loss: {(optimizer, lr): list over seeds of validation losses at valid_steps}.
        histograms: {(optimizer, lr): list over seeds of hist_steps rows of bin fractions}.
        grad_median: {(optimizer, lr): list over seeds of the median log₁₀|g| per update}.
        diverged: {(optimizer, lr): seeds whose loss became non-finite}.
        seconds: wall time of the grid.
    """

    settings: WarmupSettings
    learning_rates: tuple
    optimizers: tuple
    seeds: tuple
    claim_lr: float
    corpus: dict
    train_loss: dict
    valid_steps: tuple
    valid_loss: dict
    histograms: dict
    grad_median: dict
    diverged: dict
    seconds: float = 0.0

    def tail(self) -> int:
        """Updates averaged for a run's final training loss: the last 10 % (at least 1)."""
        return max(1, self.settings.steps // 10)

    def final_train(self, name: str, lr: float) -> list:
        """Per-seed final training loss: mean over the last :meth:`tail` updates (inf if the
        run diverged)."""
        tail = self.tail()
        out = []
        for curve in self.train_loss[(name, lr)]:
            values = curve[-tail:]
            out.append(math.inf if any(not math.isfinite(v) for v in values) else sum(values) / len(values))
        return out

    def final_valid(self, name: str, lr: float) -> list:
        """Per-seed validation loss after the last update (inf if the run diverged)."""
        return [v[-1] if math.isfinite(v[-1]) else math.inf for v in self.valid_loss[(name, lr)]]

    def median_at(self, name: str, lr: float, update: int) -> float:
        """Mean over seeds of the median log₁₀|g| before regular update ``update`` (1-based)."""
        rows = [m[update - 1] for m in self.grad_median[(name, lr)] if len(m) >= update]
        return sum(rows) / len(rows) if rows else math.nan

    def table_markdown(self) -> str:
        """Final training / validation loss (nats per character), mean ± std over seeds."""
        head = "| optimizer | " + " | ".join(f"lr = {lr:g}" for lr in self.learning_rates) + " |"
        rows = [head, "|---|" + "---|" * len(self.learning_rates)]
        for name in self.optimizers:
            cells = []
            for lr in self.learning_rates:
                if (name, lr) not in self.train_loss:
                    cells.append("–")
                    continue
                train, valid = _mean_std(self.final_train(name, lr)), _mean_std(self.final_valid(name, lr))
                mark = f"†{self.diverged[(name, lr)]}" if self.diverged.get((name, lr)) else ""
                if not math.isfinite(train[0]):
                    cells.append(f"diverged{mark}")
                    continue
                cells.append(f"{train[0]:.3f} ± {train[1]:.3f} / {valid[0]:.3f} ± {valid[1]:.3f}{mark}")
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(rows)

    def table_csv(self) -> str:
        lines = ["optimizer,lr,seed,final_train_loss,final_valid_loss,diverged"]
        for name in self.optimizers:
            for lr in self.learning_rates:
                if (name, lr) not in self.train_loss:
                    continue
                train, valid = self.final_train(name, lr), self.final_valid(name, lr)
                for seed, t, v, curve in zip(self.seeds, train, valid, self.train_loss[(name, lr)]):
                    bad = int(any(not math.isfinite(x) for x in curve))
                    lines.append(f"{name},{lr:g},{seed},{t:.6f},{v:.6f},{bad}")
        return "\n".join(lines) + "\n"

    def median_markdown(self, updates=(1, 2, 5, 10, 20)) -> str:
        """Median log₁₀|g| before the listed updates at the claim lr, mean over seeds."""
        updates = [u for u in updates if u <= self.settings.hist_steps]
        rows = ["| optimizer | " + " | ".join(f"update {u}" for u in updates) + " |",
                "|---|" + "---|" * len(updates)]
        for name in self.optimizers:
            if (name, self.claim_lr) in self.grad_median:
                rows.append(f"| {name} | " + " | ".join(
                    f"{self.median_at(name, self.claim_lr, u):.2f}" for u in updates) + " |")
        return "\n".join(rows)


def _mean_std(values):
    import statistics

    if any(not math.isfinite(v) for v in values):
        return math.inf, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def make_optimizer(name: str, params, lr: float, *, beta2: float = 0.999, adam_k: int = 0):
    """The optimizer called ``name`` (see :data:`OPTIMIZERS`) at learning rate ``lr``.

    Adam-warmup's schedule is applied by :func:`train_one`, not here."""
    from .adam_variants import PaperAdam

    betas = (0.9, beta2)
    if name in ("Adam", "Adam-warmup"):
        return PaperAdam(params, lr=lr, betas=betas)
    if name == "Adam-2k":
        return PaperAdam(params, lr=lr, betas=betas, v_only_steps=adam_k)
    if name == "Adam-eps":
        return PaperAdam(params, lr=lr, betas=betas, eps=1e-4)
    if name == "RAdam":
        from radam_ref.backends.torch import RAdam

        return RAdam(params, lr=lr, betas=betas, profile="paper")
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def supplement_key(beta2: float) -> str:
    """The key of a supplementary run at ``beta2`` in the report's figures and tables."""
    return f"warmup_beta2_{beta2:g}"


def _windows(ids, starts, context):
    import torch

    index = torch.as_tensor(starts, dtype=torch.long)[:, None] + torch.arange(context + 1)
    block = ids[index]
    return block[:, :-1], block[:, 1:]


def _sampler(ids, batch: int, context: int, seed: int):
    import torch

    generator = torch.Generator().manual_seed(seed)
    high = ids.numel() - context - 1
    while True:
        yield _windows(ids, torch.randint(0, high, (batch,), generator=generator), context)


def _log_abs_gradients(model):
    import torch

    grads = [p.grad.detach().reshape(-1) for p in model.parameters() if p.grad is not None]
    return torch.log10(torch.cat(grads).abs().double())


def _histogram(log_abs):
    """Fractions of ``log_abs`` per bin of :data:`HIST_EDGES` (outside values in the end bins)."""
    import torch

    edges = torch.tensor(HIST_EDGES, dtype=torch.float64)
    clipped = log_abs.clamp(min=HIST_EDGES[0], max=HIST_EDGES[-1])
    index = (torch.bucketize(clipped, edges, right=True) - 1).clamp(0, len(HIST_EDGES) - 2)
    counts = torch.bincount(index, minlength=len(HIST_EDGES) - 1).double()
    return (counts / counts.sum()).tolist()


def train_one(name: str, lr: float, seed: int, corpus, settings: WarmupSettings, *,
              device="cpu") -> dict:
    """Train one model; returns {"train": [...], "valid": [...], "valid_steps": [...],
    "histograms": [...], "grad_median": [...], "diverged": bool}.

    A run whose training loss becomes non-finite stops; its remaining training and
    validation losses are NaN."""
    import torch

    from radam_ref import theory

    from .transformer import PostLNLanguageModel

    s = settings
    torch.manual_seed(seed)
    model = PostLNLanguageModel(corpus.vocab_size, width=s.width, layers=s.layers, heads=s.heads,
                                context=s.context).to(device)
    optimizer = make_optimizer(name, model.parameters(), lr, beta2=s.beta2, adam_k=s.adam_k)
    vocab = corpus.vocab_size
    train_ids = corpus.train.to(device)
    valid_gen = torch.Generator().manual_seed(_VALID_SEED)
    starts = torch.randint(0, corpus.valid.numel() - s.context - 1, (s.eval_windows,), generator=valid_gen)
    valid_x, valid_y = (t.to(device) for t in _windows(corpus.valid, starts, s.context))

    def loss_of(x, y):
        return torch.nn.functional.cross_entropy(model(x).reshape(-1, vocab), y.reshape(-1))

    def validate():
        model.eval()
        with torch.no_grad():
            total = 0.0
            for i in range(0, s.eval_windows, s.batch):
                total += float(loss_of(valid_x[i:i + s.batch], valid_y[i:i + s.batch])) * valid_x[i:i + s.batch].shape[0]
        model.train()
        return total / s.eval_windows

    if name == "Adam-2k":  # §3.1: k steps that update only the second moment
        extra = _sampler(train_ids, s.batch, s.context, _EXTRA_SEED + seed)
        for _ in range(s.adam_k):
            x, y = next(extra)
            optimizer.zero_grad(set_to_none=True)
            loss_of(x, y).backward()
            optimizer.step()

    stream = _sampler(train_ids, s.batch, s.context, seed)
    out = {"train": [], "valid": [], "valid_steps": [], "histograms": [], "grad_median": [],
           "diverged": False}
    for step in range(1, s.steps + 1):
        if name == "Adam-warmup":
            for group in optimizer.param_groups:
                group["lr"] = lr * theory.warmup_factor(step, s.warmup_steps)
        x, y = next(stream)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_of(x, y)
        value = float(loss.detach())
        if not math.isfinite(value):
            out["diverged"] = True
            out["train"] += [math.nan] * (s.steps - step + 1)
            break
        loss.backward()
        if step <= s.hist_steps:
            log_abs = _log_abs_gradients(model)
            finite = log_abs[torch.isfinite(log_abs)]
            out["grad_median"].append(float(finite.median()) if finite.numel() else math.nan)
            out["histograms"].append(_histogram(log_abs))
        optimizer.step()
        out["train"].append(value)
        if step % s.eval_every == 0 or step == s.steps:
            out["valid_steps"].append(step)
            out["valid"].append(validate())
    if out["diverged"]:
        done = out["valid_steps"][-1] if out["valid_steps"] else 0
        for step in range(done + 1, s.steps + 1):
            if step % s.eval_every == 0 or step == s.steps:
                out["valid_steps"].append(step)
                out["valid"].append(math.nan)
    return out


def _train_task(task):
    """Worker entry point: (name, lr, seed, settings, threads, device) -> (key, run dict)."""
    import torch

    from .text_corpus import load_corpus

    name, lr, seed, settings, threads, device = task
    torch.set_num_threads(threads)
    corpus = load_corpus(settings.max_chars)
    return (name, lr, seed), train_one(name, lr, seed, corpus, settings, device=device)


def run(settings: WarmupSettings, *, learning_rates, seeds, claim_lr: float, optimizers=OPTIMIZERS,
        grid=None, device="cpu", threads: int = 1, workers: int = 1,
        on_run: Callable[[str], None] | None = None) -> WarmupResult:
    """Run the grid and collect a :class:`WarmupResult`.

    Args:
        settings: model and schedule.
        learning_rates: the learning rates (positive floats).
        seeds: model/minibatch seeds.
        claim_lr: the learning rate the claims read (must be in ``learning_rates``).
        optimizers: names from :data:`OPTIMIZERS`.
        grid: optional {optimizer: learning rates} restricting some optimizers to fewer
            learning rates (default: every optimizer at every learning rate).
        device: torch device.
        threads: torch intra-op threads per process.
        workers: processes running (optimizer, lr, seed) jobs in parallel (1: this
            process).  Every run is seeded on its own, so the result does not depend on it.
        on_run: called with a label after each run.
    """
    import time

    import torch

    from .text_corpus import load_corpus

    for name in optimizers:
        if name not in OPTIMIZERS:
            raise ValueError(f"optimizers must be drawn from {OPTIMIZERS}, got {name!r}")
    for lr in learning_rates:
        if not (isinstance(lr, float) and lr > 0):
            raise ValueError(f"learning_rates must hold positive floats, got {lr!r}")
    if claim_lr not in learning_rates:
        raise ValueError(f"claim_lr must be one of learning_rates {tuple(learning_rates)}, got {claim_lr!r}")
    for label, value in (("threads", threads), ("workers", workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    grid = dict(grid or {})
    tasks = [(name, lr, seed, settings, threads, device)
             for name in optimizers for lr in learning_rates
             if lr in grid.get(name, learning_rates) for seed in seeds]
    started = time.perf_counter()
    runs = {}
    if workers == 1:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            corpus = load_corpus(settings.max_chars)
            for name, lr, seed, *_ in tasks:
                runs[(name, lr, seed)] = train_one(name, lr, seed, corpus, settings, device=device)
                if on_run is not None:
                    on_run(f"{name} lr={lr:g} seed={seed}")
        finally:
            torch.set_num_threads(previous)
    else:
        import concurrent.futures
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            for key, result in pool.map(_train_task, tasks):
                runs[key] = result
                if on_run is not None:
                    on_run(f"{key[0]} lr={key[1]:g} seed={key[2]}")
    seconds = time.perf_counter() - started
    corpus = load_corpus(settings.max_chars)
    collected = {field: {} for field in ("train", "valid", "histograms", "grad_median")}
    diverged, valid_steps = {}, ()
    for name in optimizers:
        for lr in learning_rates:
            if lr not in grid.get(name, learning_rates):
                continue
            per_seed = [runs[(name, lr, seed)] for seed in seeds]
            for field in collected:
                collected[field][(name, lr)] = [r[field] for r in per_seed]
            diverged[(name, lr)] = sum(int(r["diverged"]) for r in per_seed)
            valid_steps = tuple(per_seed[0]["valid_steps"])
    return WarmupResult(
        settings=settings, learning_rates=tuple(learning_rates), optimizers=tuple(optimizers),
        seeds=tuple(seeds), claim_lr=claim_lr,
        corpus={"python": corpus.python, "documents": corpus.documents, "files": corpus.files,
                "vocabulary": corpus.vocab_size, "train_chars": int(corpus.train.numel()),
                "valid_chars": int(corpus.valid.numel()),
                "unigram_entropy": _unigram_entropy(corpus.train, corpus.vocab_size)},
        train_loss=collected["train"], valid_steps=valid_steps, valid_loss=collected["valid"],
        histograms=collected["histograms"], grad_median=collected["grad_median"],
        diverged=diverged, seconds=seconds,
    )


def _unigram_entropy(ids, vocab: int) -> float:
    """−Σ p log p of the character frequencies of ``ids`` (nats): the loss of a model that
    predicts every character from the frequencies alone."""
    import torch

    p = torch.bincount(ids, minlength=vocab).double() / ids.numel()
    p = p[p > 0]
    return float(-(p * p.log()).sum())


_COLORS = {"Adam": "tab:red", "Adam-warmup": "tab:blue", "RAdam": "tab:green",
           "Adam-2k": "tab:purple", "Adam-eps": "tab:orange"}


def _smooth(values, width: int):
    import numpy as np

    values = np.asarray(values, dtype=float)
    if width <= 1 or values.size < width:
        return values
    kernel = np.ones(width) / width
    head = np.array([values[: i + 1].mean() for i in range(width - 1)])
    return np.concatenate([head, np.convolve(values, kernel, mode="valid")])


def plot_curves(result: WarmupResult, path) -> None:
    """Figure 1/3 analog: training loss (moving average) and validation loss per update,
    mean over seeds with the min–max band, one row per learning rate."""
    import numpy as np

    from ._plotting import pyplot, save_png

    import warnings

    plt = pyplot()
    warnings.filterwarnings("ignore", message="(Mean of empty slice|All-NaN slice)", category=RuntimeWarning)
    lrs = result.learning_rates
    fig, axes = plt.subplots(len(lrs), 2, figsize=(9.0, 2.6 * len(lrs)), squeeze=False, sharex=True)
    steps = np.arange(1, result.settings.steps + 1)
    width = max(1, result.settings.steps // 50)
    for row, lr in enumerate(lrs):
        for name in result.optimizers:
            if (name, lr) not in result.train_loss:
                continue
            color = _COLORS.get(name)
            train = np.array([_smooth(c, width) for c in result.train_loss[(name, lr)]])
            valid = np.asarray(result.valid_loss[(name, lr)], dtype=float)
            for ax, x, y in ((axes[row][0], steps, train), (axes[row][1], np.asarray(result.valid_steps), valid)):
                ax.plot(x, np.nanmean(y, axis=0), color=color, lw=1.3, label=name)
                if y.shape[0] > 1:
                    ax.fill_between(x, np.nanmin(y, axis=0), np.nanmax(y, axis=0), color=color, alpha=0.15, lw=0)
        mark = "  (claims read here)" if lr == result.claim_lr else ""
        axes[row][0].set_ylabel(f"lr {lr:g}{mark}\nloss (nats/char)", fontsize=8)
        for ax in axes[row]:
            ax.grid(True, alpha=0.25)
    axes[0][0].set_title("training loss (moving average)", fontsize=10)
    axes[0][1].set_title("validation loss", fontsize=10)
    axes[-1][0].set_xlabel("update")
    axes[-1][1].set_xlabel("update")
    axes[0][1].legend(fontsize=7, frameon=False)
    s = result.settings
    fig.suptitle(f"Post-LN Transformer LM ({s.layers} layers, d = {s.width}), stdlib docstrings, "
                 f"β₂ = {s.beta2:g}, {len(result.seeds)} seed(s): mean and min–max", fontsize=10)
    fig.tight_layout()
    save_png(fig, path)


def plot_histograms(result: WarmupResult, path) -> None:
    """Figure 2/3 analog at the claim lr: for each optimizer, the distribution of log₁₀|g|
    (rows: regular updates 1 … hist_steps; colour: share of gradient entries, averaged over
    seeds), with the median marked."""
    import numpy as np

    from ._plotting import pyplot, save_png

    plt = pyplot()
    names = [n for n in result.optimizers if (n, result.claim_lr) in result.histograms]
    fig, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 3.2), squeeze=False,
                             sharex=True, sharey=True)
    edges = np.asarray(HIST_EDGES)
    for ax, name in zip(axes[0], names):
        per_seed = result.histograms[(name, result.claim_lr)]
        rows = min(len(h) for h in per_seed)  # a diverged run has fewer rows
        if rows == 0:
            ax.set_title(f"{name} (diverged)", fontsize=10)
            continue
        mean = np.mean([np.asarray(h[:rows], dtype=float) for h in per_seed], axis=0)
        ax.pcolormesh(edges, np.arange(0.5, rows + 1), mean, cmap="viridis", shading="flat")
        medians = np.nanmean([np.asarray(m[:rows]) for m in result.grad_median[(name, result.claim_lr)]], axis=0)
        ax.plot(medians, np.arange(1, rows + 1), color="white", lw=1.0, ls="--")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("log₁₀ |gradient|")
        ax.set_xlim(-12, 1)
    axes[0][0].set_ylabel("update")
    axes[0][0].invert_yaxis()
    fig.suptitle(f"|gradient| histograms over the first {result.settings.hist_steps} updates, "
                 f"lr {result.claim_lr:g} (dashed: median)", fontsize=10)
    fig.tight_layout()
    save_png(fig, path)
