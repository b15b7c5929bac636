"""``radam-ref paper``: regenerate the paper's figures, tables and a claims report.

    radam-ref paper --out DIR [--size tiny|default|full | --full] [--only PART,...]
                    [--sim-backend numpy|torch|cupy] [--device DEV] [--seed N]
                    [--threads N] [--workers N]

writes, under DIR,

    report.md                 claims vs reproduced values, figures, tables, notes
    figures/*.png             Figure 8, the rectification/warmup figure, Figure 9,
                              the learning-rate curves, the Transformer loss curves
                              (Figures 1/3) and |gradient| histograms (Figures 2/3),
                              and the loss curves of each supplementary β₂
    tables/*.md, tables/*.csv the learning-rate table, the Figure 9 summary, the
                              Transformer losses (one table per β₂), the claims
    results.json              every number the report quotes

Everything is written to a staging folder next to DIR first and moved into DIR only
when the whole run succeeded, so a failed run leaves DIR as it was.
"""

from __future__ import annotations

__all__ = ["register", "run", "PARTS"]

#: The parts of a run, in the order they execute.
PARTS = ("figure8", "rectification", "simulation", "lr", "warmup")

_FIGURE_NAMES = {
    "figure8": "figure8_variance.png",
    "rectification": "rectification_vs_warmup.png",
    "simulation": "figure9_simulation.png",
    "lr": "lr_robustness_digits.png",
    "warmup": "figure1_transformer_warmup.png",
    "warmup_hist": "figure2_gradient_histograms.png",
}

#: The figures each part writes (besides those of the supplementary β₂ values).
_PART_FIGURES = {"warmup": ("warmup", "warmup_hist")}


def _supplement_figure(beta2: float) -> str:
    return f"figure1_transformer_warmup_beta2_{beta2:g}.png"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "paper",
        help="reproduce the paper's variance analysis, simulation and learning-rate experiment",
        description="Regenerate the paper's figures (8, 9, rectification vs warmup, learning-rate "
        "robustness, and Figures 1-3 on a small post-LN Transformer without warmup), tables "
        "and a report.md that puts each reproduced number beside the paper's claim.",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    parser.add_argument("--size", choices=("tiny", "default", "full"), default=None,
                        help="run size: tiny (seconds, CI smoke test); default (2 CPU cores, "
                        "minutes; the simulation at the paper's 5000 x 6000); full (more seeds, "
                        "epochs, wider and deeper networks; for a GPU)")
    parser.add_argument("--full", action="store_true", help="same as --size full")
    parser.add_argument("--only", default=",".join(PARTS), metavar="PARTS",
                        help=f"comma-separated subset of {','.join(PARTS)} (default: all)")
    parser.add_argument("--sim-backend", choices=("numpy", "torch", "cupy"), default="numpy",
                        help="array library of the Figure 9 simulation (default: numpy)")
    parser.add_argument("--device", default=None,
                        help="device for the simulation (torch: e.g. cuda; cupy: id) and for the "
                        "learning-rate and Transformer experiments (torch device; default cpu)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the simulation; the learning-rate runs use seeds "
                        "SEED, SEED+1, ... (default 0)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for the learning-rate experiment and per Transformer "
                        "worker (default 1)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes running the Transformer experiment's runs in parallel "
                        "(default 1; the results do not depend on it)")
    parser.set_defaults(func=run)


def _fail(message: str) -> int:
    import sys

    print(f"radam-ref paper: error: {message}", file=sys.stderr)
    return 2


def _parse_parts(text: str):
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in parts if p not in PARTS]
    if bad or not parts:
        raise ValueError(f"--only must list parts from {','.join(PARTS)}, got {text!r}")
    return tuple(p for p in PARTS if p in parts)


def _versions() -> dict:
    import importlib.metadata as md
    import platform

    out = {"radam-ref": md.version("radam-ref"), "Python": platform.python_version()}
    for name in ("numpy", "torch", "matplotlib", "scikit-learn"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def run(args) -> int:
    import os

    from .sizes import SIZES

    if args.full and args.size not in (None, "full"):
        return _fail(f"--full contradicts --size {args.size!r}")
    size = SIZES["full" if args.full else (args.size or "default")]
    try:
        parts = _parse_parts(args.only)
    except ValueError as exc:
        return _fail(str(exc))
    if args.threads < 1:
        return _fail(f"--threads must be a positive integer, got {args.threads!r}")
    if args.workers < 1:
        return _fail(f"--workers must be a positive integer, got {args.workers!r}")
    if args.seed < 0:
        return _fail(f"--seed must be >= 0, got {args.seed!r}")
    if "simulation" in parts and args.sim_backend == "numpy" and args.device not in (None, "cpu"):
        return _fail(f"--device {args.device!r} needs --sim-backend torch or cupy for the simulation "
                     "(or leave out the simulation with --only)")
    out = os.path.abspath(args.out)
    if os.path.exists(out) and not os.path.isdir(out):
        return _fail(f"--out must be a folder, got {args.out!r} (an existing file)")
    parent = os.path.dirname(out)
    if not os.path.isdir(parent):
        return _fail(f"--out's parent folder does not exist: {args.out!r}")
    return _generate(out, size, parts, args)


def _generate(out: str, size, parts, args) -> int:
    import dataclasses
    import json
    import os
    import shutil
    import tempfile
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from . import claims as claims_mod
    from . import report
    from .sizes import FIGURE9_MUS, LEARNING_RATES

    console = Console(stderr=True)
    staging = tempfile.mkdtemp(prefix=".radam-paper-", dir=os.path.dirname(out))
    started = time.perf_counter()
    try:
        os.makedirs(os.path.join(staging, "figures"))
        os.makedirs(os.path.join(staging, "tables"))
        figure_path = lambda part: os.path.join(staging, "figures", _FIGURE_NAMES[part])  # noqa: E731
        summaries, tables, figures = {}, {}, {}
        claims = claims_mod.theory_claims()
        settings = {"mus": FIGURE9_MUS, "beta2": 0.999, "trajectories": size.sim_trajectories,
                    "iterations": size.sim_iterations, "sim_backend": args.sim_backend,
                    "device": args.device}
        lr_result = warmup_result = None
        supplements = []
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, transient=False) as progress:
            if "figure8" in parts:
                from . import figure8

                data = figure8.compute(size.rho_max)
                figure8.plot(data, figure_path("figure8"))
                summaries["figure8"] = data.summary()
                claims += claims_mod.figure8_claims(summaries["figure8"])
            if "rectification" in parts:
                from . import rectification

                data = rectification.compute()
                rectification.plot(data, figure_path("rectification"))
                summaries["rectification"] = data.summary()
                claims += claims_mod.rectification_claims(summaries["rectification"])
            if "simulation" in parts:
                from . import simulation

                task = progress.add_task("Figure 9 simulation", total=size.sim_iterations)
                result = simulation.simulate(
                    FIGURE9_MUS, beta2=0.999, trajectories=size.sim_trajectories,
                    iterations=size.sim_iterations, backend=args.sim_backend,
                    device=args.device, seed=args.seed,
                    on_step=lambda: progress.advance(task),
                )
                simulation.plot(result, figure_path("simulation"))
                summaries["simulation"] = result.summary()
                tables["simulation"] = simulation.table_markdown(summaries["simulation"])
                claims += claims_mod.simulation_claims(summaries["simulation"])
            if "lr" in parts:
                from . import lr_experiment

                seeds = tuple(range(args.seed, args.seed + size.lr_seeds))
                total = len(lr_experiment.OPTIMIZERS) * len(LEARNING_RATES) * len(seeds)
                task = progress.add_task("learning-rate runs", total=total)
                lr_result = lr_experiment.run(
                    learning_rates=LEARNING_RATES, seeds=seeds, epochs=size.lr_epochs,
                    hidden=size.lr_hidden, batch=size.lr_batch,
                    warmup_steps=size.lr_warmup_steps, adam_k=size.lr_adam_k,
                    train_limit=size.lr_train_limit, device=args.device or "cpu",
                    threads=args.threads, on_run=lambda _label: progress.advance(task),
                )
                lr_experiment.plot(lr_result, figure_path("lr"))
                tables["lr"] = lr_result.table_markdown()
                claims += claims_mod.lr_claims(lr_result)
            if "warmup" in parts:
                from . import warmup_experiment

                seeds = tuple(range(args.seed, args.seed + size.tf_seeds))
                controls = ("Adam-2k", "Adam-eps")
                grid = {name: size.tf_controls_lrs for name in controls}
                total = len(seeds) * (sum(len(grid.get(name, size.tf_learning_rates))
                                          for name in warmup_experiment.OPTIMIZERS)
                                      + len(warmup_experiment.OPTIMIZERS) * len(size.tf_supplement_beta2s))
                task = progress.add_task("Transformer runs", total=total)
                warmup_result = warmup_experiment.run(
                    size.tf, learning_rates=size.tf_learning_rates, seeds=seeds,
                    claim_lr=size.tf_claim_lr, grid=grid, device=args.device or "cpu",
                    threads=args.threads, workers=args.workers,
                    on_run=lambda _label: progress.advance(task),
                )
                warmup_experiment.plot_curves(warmup_result, figure_path("warmup"))
                warmup_experiment.plot_histograms(warmup_result, figure_path("warmup_hist"))
                tables["warmup"] = warmup_result.table_markdown()
                claims += claims_mod.warmup_claims(warmup_result)
                for beta2 in size.tf_supplement_beta2s:  # all five optimizers, claim lr only
                    extra = warmup_experiment.run(
                        dataclasses.replace(size.tf, beta2=beta2), learning_rates=(size.tf_claim_lr,),
                        seeds=seeds, claim_lr=size.tf_claim_lr, device=args.device or "cpu",
                        threads=args.threads, workers=args.workers,
                        on_run=lambda _label: progress.advance(task),
                    )
                    key = warmup_experiment.supplement_key(beta2)
                    warmup_experiment.plot_curves(
                        extra, os.path.join(staging, "figures", _supplement_figure(beta2)))
                    figures[key] = f"figures/{_supplement_figure(beta2)}"
                    tables[key] = extra.table_markdown()
                    claims += claims_mod.warmup_claims(extra, supplement=True)
                    supplements.append(extra)
        for part in parts:
            for name in _PART_FIGURES.get(part, (part,)):
                figures[name] = f"figures/{_FIGURE_NAMES[name]}"
        seconds = time.perf_counter() - started
        parts_data = {"figure8": summaries.get("figure8"),
                      "rectification": summaries.get("rectification"),
                      "simulation": summaries.get("simulation"), "lr": lr_result,
                      "warmup": warmup_result, "warmup_supplements": supplements}
        text = report.render(claims=claims, size=size, parts=parts_data, figures=figures,
                             tables=tables, settings=settings, versions=_versions(),
                             seconds=seconds)
        _write(staging, "report.md", text)
        _write(staging, "tables/claims.md", report.claims_table(claims) + "\n")
        if "simulation" in tables:
            _write(staging, "tables/figure9_summary.md", tables["simulation"] + "\n")
        if lr_result is not None:
            _write(staging, "tables/lr_final_accuracy.md", tables["lr"] + "\n")
            _write(staging, "tables/lr_final_accuracy.csv", lr_result.table_csv())
        if warmup_result is not None:
            _write(staging, "tables/transformer_final_loss.md", tables["warmup"] + "\n")
            _write(staging, "tables/transformer_final_loss.csv", warmup_result.table_csv())
        for extra in supplements:
            from .warmup_experiment import supplement_key

            key = supplement_key(extra.settings.beta2)
            _write(staging, f"tables/transformer_final_loss_beta2_{extra.settings.beta2:g}.md",
                   tables[key] + "\n")
            _write(staging, f"tables/transformer_final_loss_beta2_{extra.settings.beta2:g}.csv",
                   extra.table_csv())
        _write(staging, "results.json", json.dumps(
            _jsonable({"size": size.name, "parts": list(parts), "settings": settings,
                       "summaries": summaries, "claims": [c.__dict__ for c in claims],
                       "lr_curves": None if lr_result is None else {
                           f"{name} lr={lr:g}": runs for (name, lr), runs in lr_result.curves.items()},
                       "transformer": None if warmup_result is None else _warmup_json(warmup_result),
                       "transformer_supplements": {f"{r.settings.beta2:g}": _warmup_json(r)
                                                   for r in supplements}}),
            indent=1, sort_keys=True) + "\n")
        _move_into(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    verdicts = {}
    for c in claims:
        verdicts[c.verdict] = verdicts.get(c.verdict, 0) + 1
    console.print(f"wrote {args.out}/report.md ({len(claims)} claims: "
                  + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())) + ")")
    return 0


def _warmup_json(result) -> dict:
    """The Transformer experiment's settings, curves and gradient medians (the histograms
    themselves are in the figure)."""
    import dataclasses

    label = lambda key: f"{key[0]} lr={key[1]:g}"  # noqa: E731
    return {"settings": dataclasses.asdict(result.settings), "seeds": list(result.seeds),
            "claim_lr": result.claim_lr, "corpus": result.corpus, "seconds": result.seconds,
            "valid_steps": list(result.valid_steps),
            "train_loss": {label(k): v for k, v in result.train_loss.items()},
            "valid_loss": {label(k): v for k, v in result.valid_loss.items()},
            "grad_median_log10": {label(k): v for k, v in result.grad_median.items()}}


def _write(root: str, relative: str, text: str) -> None:
    import os

    with open(os.path.join(root, relative), "w", encoding="utf-8") as handle:
        handle.write(text)


def _move_into(staging: str, out: str) -> None:
    """Move every staged file into ``out`` (created), replacing same-named files."""
    import os

    for folder, _, files in os.walk(staging):
        relative = os.path.relpath(folder, staging)
        target = os.path.normpath(os.path.join(out, relative))
        os.makedirs(target, exist_ok=True)
        for name in files:
            os.replace(os.path.join(folder, name), os.path.join(target, name))


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) or isinstance(value, (int, str, bool)) or value is None:
        return value
    return float(value)
