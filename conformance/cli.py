"""``radam-ref conformance``: check an RAdam implementation against the spec.

Exit status: 0 the target conforms; 1 it does not (or the suite hit an error);
2 usage or import error, with a message naming what failed.  ``--all`` surveys
every installed built-in target and prints one summary table; it exits 1 only
when one of this project's own implementations (``radam_ref.*``) does not
conform or a check errors — third-party findings are reported, not fatal —
unless ``--strict``.
"""

from __future__ import annotations

import json
import sys

__all__ = ["register", "run", "build_parser"]


def register(subparsers) -> None:
    import argparse

    parser = subparsers.add_parser(
        "conformance",
        help="check an RAdam implementation against the spec, fingerprint it, say where it deviates",
        description=__doc__.replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(parser)
    parser.set_defaults(func=run)


def build_parser():
    """A standalone parser (for documentation and tests)."""
    import argparse

    parser = argparse.ArgumentParser(prog="radam-ref conformance", description=__doc__.replace("``", ""),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    return parser


def _add_arguments(parser) -> None:
    from .runner import DEFAULT_HORIZON, DEFAULT_MAX_EXAMPLES

    parser.add_argument("target", nargs="?", metavar="TARGET",
                        help="a built-in name (torch.optim.RAdam, optax.radam, radam_ref.step, "
                             "radam_ref.optax_transform, radam_ref.backends.numpy, radam_ref.backends.torch) "
                             "or module:attr")
    parser.add_argument("--all", action="store_true", help="check every installed built-in target")
    parser.add_argument("--profile", default=None, metavar="NAME|auto",
                        help="profile to check against (default: the one the target claims); "
                             "auto: fingerprint first, then check against the fingerprint")
    parser.add_argument("--kwargs", default=None, metavar="JSON",
                        help="keyword arguments for the target's constructor or factory, as JSON")
    parser.add_argument("--dtype", default=None, help="dtype of the main checks (default: the target's)")
    parser.add_argument("--check", action="append", default=None, metavar="NAME",
                        help="run only this check (repeatable)")
    parser.add_argument("--max-examples", type=int, default=DEFAULT_MAX_EXAMPLES, metavar="N",
                        help=f"Hypothesis examples per drawn property (default {DEFAULT_MAX_EXAMPLES})")
    parser.add_argument("--seed", type=int, default=0, help="Hypothesis seed (default 0)")
    parser.add_argument("--horizon", type=int, default=DEFAULT_HORIZON, metavar="STEPS",
                        help=f"steps of the long-horizon check (default {DEFAULT_HORIZON})")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the report as JSON")
    parser.add_argument("--results-page", default=None, metavar="PATH",
                        help="regenerate the results page (markdown) at PATH")
    parser.add_argument("--strict", action="store_true",
                        help="with --all: exit 1 if any target does not conform")
    parser.add_argument("--no-fingerprint", action="store_true",
                        help="skip the fingerprint (not with --profile auto)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _usage(message: str) -> int:
    print(f"radam-ref conformance: error: {message}", file=sys.stderr)
    return 2


def _progress(disabled: bool):
    try:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    except ImportError:  # pragma: no cover
        return None
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), transient=True, disable=disabled or not sys.stderr.isatty(),
                    console=None)


def run(args) -> int:
    from .adapters.registry import ALL_TARGETS, TargetUnavailable, target_label
    from .checks import CHECKS
    from .report import print_report, print_summary, write_json
    from .runner import Report, run_conformance
    from ._dtypes import DTYPES

    if args.max_examples < 1:
        return _usage(f"--max-examples must be >= 1, got {args.max_examples}")
    if args.horizon < 1:
        return _usage(f"--horizon must be >= 1, got {args.horizon}")
    if args.dtype is not None and args.dtype not in DTYPES:
        return _usage(f"--dtype: unknown dtype {args.dtype!r} (choose one of {', '.join(DTYPES)})")
    for name in args.check or ():
        if name not in CHECKS:
            return _usage(f"--check: unknown check {name!r} (known: {', '.join(CHECKS)})")
    kwargs = {}
    if args.kwargs:
        try:
            kwargs = json.loads(args.kwargs)
        except json.JSONDecodeError as exc:
            return _usage(f"--kwargs: invalid JSON {args.kwargs!r} ({exc})")
        if not isinstance(kwargs, dict):
            return _usage(f"--kwargs must be a JSON object, got {args.kwargs!r}")
    if args.profile is not None and args.profile != "auto":
        from radam_ref import PROFILES

        if args.profile not in PROFILES:
            return _usage(f"--profile: unknown profile {args.profile!r} (known: {', '.join(PROFILES)}, auto)")
    if args.results_page:
        from .results_page import write_results_page

        write_results_page(args.results_page, max_examples=args.max_examples, seed=args.seed,
                           horizon=args.horizon)
        print(f"wrote {args.results_page}")
        if not args.all and not args.target:
            return 0
    if args.all == bool(args.target):
        return _usage("give a TARGET or --all (not both)")

    options = dict(profile=args.profile, dtype=args.dtype, checks=args.check, max_examples=args.max_examples,
                   seed=args.seed, horizon=args.horizon, fingerprint=not args.no_fingerprint)
    if args.all:
        if args.dtype is not None:
            return _usage("--dtype applies to one TARGET, not to --all (each target uses its own)")
        reports = []
        progress = _progress(args.no_progress)
        n_checks = len(args.check or CHECKS) + 1
        with progress or _Null():
            task = progress.add_task("conformance", total=n_checks * len(ALL_TARGETS)) if progress else None
            for name, kw in ALL_TARGETS:
                label = target_label(name, kw)
                if progress:
                    progress.update(task, description=label)
                try:
                    report = run_conformance(name, kw, **{**options, "dtype": None},
                                             on_check=lambda c: progress and progress.advance(task))
                except TargetUnavailable as exc:
                    report = Report(label, "", "", installed=False, message=str(exc), name=name, kwargs=kw)
                    if progress:
                        progress.advance(task, n_checks)
                except ValueError as exc:
                    report = Report(label, "", "", installed=False, message=str(exc), name=name, kwargs=kw)
                reports.append(report)
        print_summary(reports)
        for report in reports:
            for r in report.results:
                if r.verdict in ("fail", "error"):
                    print(f"  {report.target} / {r.check}: {r.summary[:300]}")
        if args.json:
            write_json(args.json, [r.to_json() for r in reports])
        own_bad = any(r.installed and not r.conforms and r.name.startswith("radam_ref") for r in reports)
        errors = any(res.verdict == "error" for r in reports for res in r.results)
        any_bad = any(r.installed and not r.conforms for r in reports)
        return 1 if (own_bad or errors or (args.strict and any_bad)) else 0

    progress = _progress(args.no_progress)
    try:
        with progress or _Null():
            n_checks = len(args.check or CHECKS) + 1
            task = progress.add_task(args.target, total=n_checks) if progress else None
            report = run_conformance(args.target, kwargs, **options,
                                     on_check=lambda c: progress and progress.advance(task))
    except TargetUnavailable as exc:
        return _usage(str(exc))
    except ValueError as exc:
        return _usage(str(exc))
    print_report(report)
    if args.json:
        write_json(args.json, report.to_json())
    return 0 if report.conforms else 1


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
