"""Reports: a table per target, one summary table for ``--all``, and JSON.

What a terminal shows is meant to be read and pasted:

* a failing run prints at most about a screenful per target: the table of
  checks, the fingerprint, then one line per finding with a one-line command
  that replays it (``radam-ref replay REPORT.json FINDING``); the full scenario
  (hex floats) stays in the JSON report; ``verbose`` adds the details and the
  Python repros;
* commands and repros are printed unwrapped (a long line is soft-wrapped by the
  terminal, never hard-wrapped by us), so a copy pastes as one command;
* the width follows the terminal, or ``COLUMNS`` when set (120 when neither).

Falls back to plain text when ``rich`` is not installed.
"""

from __future__ import annotations

import json
import os
import shlex
import sys

from .fingerprint import AXES

__all__ = ["print_report", "print_summary", "write_json", "SYMBOLS", "fingerprint_line", "fingerprint_short",
           "findings_of", "replay_command", "make_console", "MAX_FINDING_LINES"]

#: Finding lines shown per target without --verbose (the rest are counted).
MAX_FINDING_LINES = 8

SYMBOLS = {"pass": "✓ pass", "acceptable": "≈ acceptable", "fail": "✗ FAIL", "not supported": "– not supported",
           "error": "! error"}
_TARGET_STYLE = {"conforms": "green", "does not conform": "bold red", "error": "bold magenta",
                 "not supported": "yellow", "usage error": "bold magenta", "not installed": "dim"}
_STYLE = {"pass": "green", "acceptable": "yellow", "fail": "bold red", "not supported": "dim", "error": "magenta"}
_SHORT_AXES = {"threshold": "threshold", "comparison": "cmp", "eps_placement": "eps",
               "weight_decay_mode": "weight decay", "before_rectification": "before rect.", "nesterov": "nesterov"}


#: Narrowest width the report is laid out at (a COLUMNS below it is raised to it).
MIN_WIDTH = 40


def make_console(file=None):
    """A rich console on ``file`` (default stdout): terminal width, or COLUMNS (at
    least :data:`MIN_WIDTH`), else 120."""
    try:
        from rich.console import Console
    except ImportError:  # pragma: no cover - rich is in the [cli] extra
        return None
    file = file or sys.stdout
    tty = hasattr(file, "isatty") and file.isatty()
    columns = os.environ.get("COLUMNS", "")
    width = None if (tty or columns.isdigit()) else 120
    if columns.isdigit() and int(columns) < MIN_WIDTH:
        width = MIN_WIDTH  # narrower, a table is one character per line: wrap it at a usable width

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            # The reader went away (``radam-ref conformance X | head``): stop printing,
            # keep the run's own exit status (rich's default exits with status 1, which
            # would read as "does not conform").
            silence(self.file)
            self.quiet = True

    return _Console(file=file, width=width, highlight=False)


def silence(stream) -> None:
    """Point ``stream``'s file descriptor at the null device (its reader closed the
    pipe), so that later writes and the flush at exit neither fail nor print."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


_console = make_console


def findings_of(result) -> list:
    """The failing findings of a check result (one pseudo-finding per failing
    check when the result carries none)."""
    findings = getattr(result, "findings", None) or []
    failing = [f for f in findings if getattr(f, "severity", "fail") == "fail"]
    if failing or result.verdict != "fail":
        return failing
    return [None]


def replay_command(report_path: str, result, finding, index: int | None = None) -> str:
    """``radam-ref replay REPORT FINDING``: one line, quoted for a POSIX shell."""
    ref = finding.id if finding is not None else result.check
    if index is not None:
        ref = f"{index}:{ref}"
    return f"radam-ref replay {shlex.quote(report_path)} {shlex.quote(ref)}"


def _plain(console, text: str) -> None:
    """Print ``text`` unwrapped (soft wrap: the terminal folds, we never insert newlines)."""
    if console is None:
        print(text)
    else:
        console.print(text, soft_wrap=True, markup=False, highlight=False, crop=False)


def fingerprint_line(fp) -> str:
    """One line: the fingerprint and how it differs from the paper."""
    if fp is None:
        return "not fingerprinted"
    if not fp.consistent:
        return fp.note or fp.summary()
    parts = []
    for axis in AXES:
        if axis == "comparison":
            continue
        parts.append(f"{_SHORT_AXES[axis]} {fp.describe_axis(axis)}")
    line = ", ".join(parts)
    if fp.profiles:
        line += f" [= {', '.join(fp.profiles)}]"
    line += "; vs paper: " + (", ".join(_SHORT_AXES[a] for a in fp.differs_from_paper) or "same")
    return line


def fingerprint_short(fp) -> str:
    """The fingerprint in a few words (summary tables)."""
    if fp is None:
        return "—"
    if not fp.consistent:
        return "no combination of the spec's axes"
    eps = {"before_bias_correction": "before", "after_bias_correction": "after"}
    parts = [
        f"thr {fp.describe_axis('threshold')}",
        "eps " + "/".join(eps[v] for v in fp.axes["eps_placement"]),
        "wd " + "/".join(fp.axes["weight_decay_mode"]).replace("decoupled/decoupled_moving", "decoupled"),
    ]
    if fp.axes["before_rectification"] == ("none",):
        parts.append("no SGD steps")
    if fp.axes["nesterov"] == (True,):
        parts.append("nesterov")
    line = ", ".join(parts)
    if fp.profiles:
        line += f" = {'/'.join(fp.profiles)}"
    return line


def print_report(report, console=None, *, verbose: bool = False, report_path: str | None = None,
                 index: int | None = None) -> None:
    """The per-check table of one target, then one line per finding (and, with
    ``report_path``, the command that replays it); details only when ``verbose``."""
    console = console or _console()
    title = f"{report.target} — profile {report.profile or '?'}, dtype {report.dtype or '?'}"
    if report.results:
        if console is None:  # pragma: no cover
            print(title)
            for r in report.results:
                print(f"  {r.check:20s} {SYMBOLS[r.verdict]:18s} {r.summary}")
        else:
            from rich.table import Table

            table = Table(title=title, show_lines=False, expand=False)
            table.add_column("check", no_wrap=True)
            table.add_column("verdict", no_wrap=True)
            table.add_column("details", overflow="fold")
            table.add_column("time", justify="right", no_wrap=True)
            for r in report.results:
                summary = r.summary if verbose or len(r.summary) <= 160 else r.summary[:157] + "…"
                table.add_row(r.check, f"[{_STYLE[r.verdict]}]{SYMBOLS[r.verdict]}[/]", _escape(summary),
                              f"{r.seconds:.1f}s")
            console.print(table)
    if report.fingerprint is not None:
        _plain(console, f"fingerprint: {fingerprint_line(report.fingerprint)}")
    if report.message:
        _plain(console, report.message)
    if report.output and (report.verdict == "error" or verbose):
        lines = report.output.splitlines()
        shown = lines if verbose else lines[-20:]
        _plain(console, "last output of the target:")
        for line in shown:
            _plain(console, "  | " + line)
    shown_findings = 0
    hidden = 0
    for r in report.results:
        if r.verdict == "error":
            if r.summary not in (report.message or ""):
                _plain(console, f"! {r.check}: {r.summary}")
            if verbose:
                for note in r.notes:
                    _plain(console, "    " + note)
            continue
        if r.verdict != "fail":
            continue
        for finding in findings_of(r):
            if not verbose and shown_findings >= MAX_FINDING_LINES:
                hidden += 1
                continue
            shown_findings += 1
            _plain(console, "✗ " + _finding_line(r, finding))
            if verbose:
                m = finding.mismatch if finding is not None else r.mismatch
                if m is not None:
                    _plain(console, f"    first failing step {m.step}, {m.where()}: expected {m.expected!r}, "
                                    f"got {m.got!r}, tolerance {m.tolerance:.3g}")
                detail = getattr(finding, "detail", None) or r.axis
                if detail:
                    _plain(console, f"    {detail}")
            if report_path:
                _plain(console, "    " + replay_command(report_path, r, finding, index))
            if verbose:
                repro = _python_repro(report, r, finding)
                if repro:
                    _plain(console, repro)
    if hidden:
        _plain(console, f"… {hidden} more finding(s): see the JSON report, or --verbose")
    style = _TARGET_STYLE.get(report.verdict, "bold")
    line = f"{report.target}: {report.verdict} ({report.seconds:.1f}s)"
    if console is None:  # pragma: no cover
        print(line)
    else:
        console.print(f"[{style}]{_escape(line)}[/]", soft_wrap=True)


def _python_repro(report, result, finding) -> str | None:
    """Python source that replays ``finding`` (the check's repro when it has none)."""
    if finding is None or getattr(finding, "scenario", None) is None or not report.spec:
        return result.repro
    name, kwargs = report.spec[0], dict(report.spec[1] or {})
    extra = dict(getattr(finding, "extra", None) or {})
    extra_s = f", extra={extra!r}" if extra else ""
    body = json.dumps(finding.scenario, separators=(",", ":"))
    return (f"from radam_ref.conformance import replay\n"
            f"replay({name!r}, {kwargs!r}, check={finding.check!r}{extra_s},\n"
            f"       scenario=r'''{body}''')")


def _escape(text: str) -> str:
    try:
        from rich.markup import escape
    except ImportError:  # pragma: no cover
        return text
    return escape(text)


def _finding_line(result, finding) -> str:
    if finding is None:
        where = ""
        if result.mismatch is not None:
            where = f" (first at step {result.mismatch.step}, {result.mismatch.where()})"
        axis = f" — {result.axis.split(': ')[0]}" if result.axis else ""
        return f"{result.check}{axis}: {result.summary[:200]}{where}"
    cause = getattr(finding, "cause", "") or ""
    where = ""
    if finding.mismatch is not None:
        where = f" (first at step {finding.mismatch.step}, {finding.mismatch.where()})"
    return f"{finding.id}: {finding.title}{' [' + cause + ']' if cause else ''}{where}"


def _cause_short(result) -> str:
    """A few words for a failing check in the summary: its findings' cause ids
    (the catalogue's), else the head of its most likely axis."""
    if result.verdict == "error":
        return "error"
    causes = []
    for finding in findings_of(result):
        cause = getattr(finding, "cause", None)
        if cause and cause not in causes:
            causes.append(cause)
    if causes:
        return ", ".join(causes)
    head = (result.axis or "?").split(":")[0].split(" (")[0]
    return head if len(head) <= 30 else head[:29] + "…"


def _failing_by_cause(results) -> str:
    """``cause (check, check)`` per cause, ``cause (N checks)`` when many share one."""
    by_cause: dict = {}
    for r in results:
        if r.verdict in ("fail", "error"):
            for cause in _cause_short(r).split(", "):
                by_cause.setdefault(cause, []).append(r.check)
    return ", ".join(f"{cause} ({', '.join(checks) if len(checks) <= 2 else f'{len(checks)} checks'})"
                     for cause, checks in by_cause.items())


def print_summary(reports, console=None) -> None:
    """One table for ``--all``: a row per target."""
    console = console or _console()
    if console is None:  # pragma: no cover
        for rep in reports:
            print(f"{rep.target:45s} {rep.verdict}")
        return
    from rich.table import Table

    table = Table(title="radam-ref conformance --all", show_lines=True)
    table.add_column("target", no_wrap=True)
    table.add_column("profile", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("✓/≈/✗/–", no_wrap=True, justify="center")
    table.add_column("failing checks (cause)", overflow="fold")
    table.add_column("fingerprint", overflow="fold")
    table.add_column("time", justify="right", no_wrap=True)
    for rep in reports:
        if not rep.installed:
            table.add_row(rep.target, "", "[dim]not installed[/]", "", _escape(rep.message), "", "")
            continue
        if rep.outcome:
            table.add_row(rep.target, rep.profile, f"[{_TARGET_STYLE.get(rep.verdict, 'bold')}]{rep.verdict}[/]",
                          "", _escape(rep.message), fingerprint_short(rep.fingerprint), f"{rep.seconds:.0f}s")
            continue
        counts = {v: sum(r.verdict == v for r in rep.results) for v in SYMBOLS}
        tally = f"{counts['pass']}/{counts['acceptable']}/{counts['fail'] + counts['error']}/{counts['not supported']}"
        failing = _failing_by_cause(rep.results)
        style = _TARGET_STYLE.get(rep.verdict, "bold")
        table.add_row(rep.target, rep.profile, f"[{style}]{rep.verdict}[/]", tally, _escape(failing) or "—",
                      fingerprint_short(rep.fingerprint), f"{rep.seconds:.0f}s")
    console.print(table)


def write_json(path: str, payload) -> None:
    """Write ``payload`` to ``path`` atomically (a temporary file, then rename), or
    to stdout for ``-``."""
    if path == "-":
        try:
            json.dump(payload, sys.stdout, indent=2, ensure_ascii=False)
            sys.stdout.write("\n")
            sys.stdout.flush()
        except BrokenPipeError:  # the reader went away (``| head``): not an error of the run
            silence(sys.stdout)
        return
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    os.replace(tmp, path)
