"""``radam-ref conformance``: check an RAdam implementation against the spec.

Each target runs in its own child process with a time limit (--timeout): a
target that exits, crashes, hangs or returns garbage gets the verdict "error"
with the reason and the last lines of its output, never "conforms".

Exit status: 0 the target conforms; 1 it does not (or refuses the configuration:
"not supported"); 2 a usage error (a bad option, a target that cannot be
imported or built as asked, a --kwargs key the suite sets itself) or an "error"
verdict, with a message naming what failed.  --all checks every built-in target
that is installed, says which are not and why, and prints one summary table; it
exits 2 when a target errors, 1 when one of this project's own implementations
(radam_ref.*) does not conform (any target with --strict), else 0.

Progress goes to stderr as plain lines.  --json PATH writes the report (for
--all: a list, rewritten after each target, so a crash loses nothing); --json -
writes it to stdout and the human report to stderr.  Each finding prints a
one-line replay command: radam-ref replay REPORT.json FINDING.
"""

from __future__ import annotations

import json
import os
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
                        help="a built-in name (radam_ref.step, torch.optim.RAdam, optax.radam, timm.optim.RAdamLegacy, "
                             "torch_optimizer.RAdam, pytorch_optimizer.RAdam, authors.RAdam, …), module:attr "
                             "or path/to/file.py:attr")
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
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="also write the report as JSON (-: to stdout, the human report to stderr)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="time limit per target, in its child process (default 300)")
    parser.add_argument("--verbose", action="store_true",
                        help="print every finding in full, with its Python repro")
    parser.add_argument("--results-page", default=None, metavar="PATH",
                        help="regenerate the results page (markdown) at PATH")
    parser.add_argument("--strict", action="store_true",
                        help="with --all: exit 1 if any target does not conform")
    parser.add_argument("--no-fingerprint", action="store_true",
                        help="skip the fingerprint (not with --profile auto)")
    parser.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")


def _usage(message: str) -> int:
    print(f"radam-ref conformance: error: {message}", file=sys.stderr)
    return 2


def _check_output(path: str | None, flag: str) -> str | None:
    """Why ``path`` cannot be written (checked before any work), or None."""
    import os

    if path is None or path == "-":
        return None
    if os.path.isdir(path):
        return f"{flag}: {path!r} is a directory"
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        return f"{flag}: the directory {parent!r} does not exist"
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return f"{flag}: {path!r} is not writable"
    if not os.path.exists(path) and not os.access(parent, os.W_OK):
        return f"{flag}: cannot create files in {parent!r}"
    return None


class _Progress:
    """Plain progress lines on stderr (piped or not): one per target and per check."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total, self.index = enabled, total, 0
        self.label = ""

    def target(self, label: str) -> None:
        self.index += 1
        self.label = label
        self._say(f"[{self.index}/{self.total}] {label}")

    def event(self, event: dict) -> None:
        if event.get("event") == "result":
            r = event["result"]
            self._say(f"    {r['check']}: {r['verdict']} ({r.get('seconds', 0):.1f}s)")
        elif event.get("event") == "start" and event.get("stage") == "fingerprint":
            self._say("    fingerprint …")

    def _say(self, text: str) -> None:
        if self.enabled:
            try:
                print(text, file=sys.stderr, flush=True)
            except (BrokenPipeError, ValueError):  # stderr's reader went away: the run goes on
                from .report import silence

                self.enabled = False
                silence(sys.stderr)


def _report_file(args, payload) -> str | None:
    """Where replay commands point: --json PATH, else a file in the temporary
    directory (written only when there is something to replay)."""
    import os
    import tempfile

    if args.json and args.json != "-":
        return args.json
    if payload is None:
        return None
    from .report import write_json

    path = os.path.join(tempfile.gettempdir(), f"radam-ref-report-{os.getpid()}.json")
    write_json(path, payload)
    return path


def _has_findings(report) -> bool:
    return any(r.verdict == "fail" for r in report.results)


def run(args) -> int:
    """``radam-ref conformance``; Ctrl-C ends the run with status 130 and one line (the
    target's process group is killed on the way out; with --all and --json, the targets
    already finished are in the JSON file)."""
    try:
        return _run(args)
    except KeyboardInterrupt:
        try:
            print("radam-ref conformance: interrupted", file=sys.stderr, flush=True)
        except (BrokenPipeError, ValueError):
            pass
        return 130


def _run(args) -> int:
    from .adapters.registry import ALL_TARGETS, TargetUnavailable, check_kwargs, target_label
    from .checks import CHECKS
    from .isolation import DEFAULT_TIMEOUT, run_isolated
    from .report import make_console, print_report, print_summary, write_json
    from .runner import Report
    from ._dtypes import DTYPES

    if args.max_examples < 1:
        return _usage(f"--max-examples must be >= 1, got {args.max_examples}")
    if args.horizon < 1:
        return _usage(f"--horizon must be >= 1, got {args.horizon}")
    timeout = DEFAULT_TIMEOUT if args.timeout is None else args.timeout
    if not timeout > 0:
        return _usage(f"--timeout must be > 0 seconds, got {args.timeout}")
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
        problem = check_kwargs(kwargs)
        if problem:
            return _usage(problem)
    if args.profile is not None and args.profile != "auto":
        from radam_ref import PROFILES

        if args.profile not in PROFILES:
            return _usage(f"--profile: unknown profile {args.profile!r} (known: {', '.join(PROFILES)}, auto)")
    for path, flag in ((args.json, "--json"), (args.results_page, "--results-page")):
        problem = _check_output(path, flag)
        if problem:
            return _usage(problem)
    if args.json and args.results_page and args.json != "-" and \
            os.path.realpath(args.json) == os.path.realpath(args.results_page):
        return _usage(f"--json and --results-page name the same file {args.json!r}: each would overwrite the other")
    if args.results_page:
        import tempfile

        from .results_page import write_results_page

        # runs in this process: keep Hypothesis's files out of the working directory
        os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                              os.path.join(tempfile.gettempdir(), "radam-ref-hypothesis"))

        write_results_page(args.results_page, max_examples=args.max_examples, seed=args.seed,
                           horizon=args.horizon)
        print(f"wrote {args.results_page}", file=sys.stderr)
        if not args.all and not args.target:
            return 0
    if args.all == bool(args.target):
        return _usage("give a TARGET or --all (not both)")
    if args.all and args.dtype is not None:
        return _usage("--dtype applies to one TARGET, not to --all (each target uses its own)")

    human = make_console(sys.stderr if args.json == "-" else sys.stdout)
    options = dict(profile=args.profile, dtype=args.dtype, checks=args.check, max_examples=args.max_examples,
                   seed=args.seed, horizon=args.horizon, fingerprint=not args.no_fingerprint)
    if args.all:
        progress = _Progress(not args.no_progress, len(ALL_TARGETS))
        reports = []
        if args.json and args.json != "-":
            write_json(args.json, [])
        for name, kw in ALL_TARGETS:
            label = target_label(name, kw)
            progress.target(label)
            try:
                report = run_isolated(name, kw, timeout=timeout, on_event=progress.event,
                                      **{**options, "dtype": None})
            except (TargetUnavailable, ValueError) as exc:
                report = Report(label, "", "", installed=False, message=str(exc), name=name, kwargs=kw)
            if report.verdict == "error":
                progress._say(f"    error: {report.message}")
            reports.append(report)
            if args.json and args.json != "-":
                write_json(args.json, [r.to_json() for r in reports])  # nothing is lost if a later target hangs
        payload = [r.to_json() for r in reports]
        if args.json == "-":
            write_json("-", payload)
        print_summary(reports, human)
        path = _report_file(args, payload if any(_has_findings(r) for r in reports) else None)
        for i, report in enumerate(reports, 1):
            if report.installed and report.verdict not in ("conforms",):
                print_report(report, human, verbose=args.verbose, report_path=path, index=i)
        if any(r.verdict == "error" for r in reports):
            return 2
        own_bad = any(r.installed and not r.conforms and r.name.startswith("radam_ref") for r in reports)
        any_bad = any(r.installed and not r.conforms for r in reports)
        return 1 if (own_bad or (args.strict and any_bad)) else 0

    progress = _Progress(not args.no_progress, 1)
    progress.target(target_label(args.target, kwargs))
    try:
        report = run_isolated(args.target, kwargs, timeout=timeout, on_event=progress.event, **options)
    except (TargetUnavailable, ValueError) as exc:
        return _usage(str(exc))
    if report.verdict == "usage error":
        return _usage(report.message)
    payload = report.to_json()
    if args.json:
        write_json(args.json, payload)
    path = _report_file(args, payload if _has_findings(report) else None)
    print_report(report, human, verbose=args.verbose, report_path=path)
    if report.verdict == "error":
        return 2
    return 0 if report.conforms else 1
