"""Reports: a rich table per target, one summary table for ``--all``, and JSON.

Falls back to plain text when ``rich`` is not installed.
"""

from __future__ import annotations

import json
import sys

from .fingerprint import AXES

__all__ = ["print_report", "print_summary", "write_json", "SYMBOLS", "fingerprint_line", "fingerprint_short"]

SYMBOLS = {"pass": "✓ pass", "acceptable": "≈ acceptable", "fail": "✗ FAIL", "not supported": "– not supported",
           "error": "! error"}
_STYLE = {"pass": "green", "acceptable": "yellow", "fail": "bold red", "not supported": "dim", "error": "magenta"}
_SHORT_AXES = {"threshold": "threshold", "comparison": "cmp", "eps_placement": "eps",
               "weight_decay_mode": "weight decay", "before_rectification": "before rect.", "nesterov": "nesterov"}


def _console(file=None):
    try:
        from rich.console import Console
    except ImportError:  # pragma: no cover - rich is in the [cli] extra
        return None
    file = file or sys.stdout
    tty = hasattr(file, "isatty") and file.isatty()
    return Console(file=file, width=None if tty else 160)


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


def print_report(report, console=None) -> None:
    """The per-check table of one target, then each failure in full."""
    console = console or _console()
    title = f"{report.target} — profile {report.profile}, dtype {report.dtype}"
    if console is None:  # pragma: no cover
        print(title)
        for r in report.results:
            print(f"  {r.check:20s} {SYMBOLS[r.verdict]:18s} {r.summary}")
        print("verdict:", report.verdict)
        return
    from rich.panel import Panel
    from rich.syntax import Syntax
    from rich.table import Table

    table = Table(title=title, show_lines=False, expand=False)
    table.add_column("check", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("details", overflow="fold")
    table.add_column("time", justify="right", no_wrap=True)
    for r in report.results:
        table.add_row(r.check, f"[{_STYLE[r.verdict]}]{SYMBOLS[r.verdict]}[/]", r.summary, f"{r.seconds:.1f}s")
    console.print(table)
    if report.fingerprint is not None:
        console.print(f"[bold]fingerprint[/]: {fingerprint_line(report.fingerprint)}")
        if report.fingerprint.threshold_interval:
            lo, hi = report.fingerprint.threshold_interval
            console.print(f"  threshold lies in [{lo:.6g}, {hi:.6g}) by the first rectified steps of the probes")
    if report.message:
        console.print(report.message)
    for r in report.results:
        if r.verdict == "fail":
            lines = [f"[bold]{r.summary}[/]"]
            m = r.mismatch
            if m is not None:
                lines.append(f"first failing step: {m.step}   parameter: params[{m.group}][{m.param}]   "
                             f"element: {list(m.index)}")
                if not m.message or "expected" not in m.message:
                    lines.append(f"expected: {m.expected!r}   got: {m.got!r}   tolerance: {m.tolerance:.3g}")
            if r.axis:
                lines.append(f"most likely axis: {r.axis}")
            console.print(Panel("\n".join(lines), title=f"✗ {r.check}", border_style="red"))
            if r.repro:
                console.print(Syntax(r.repro, "python", word_wrap=True))
        if r.verdict == "error":
            console.print(Panel(r.summary + "\n" + "\n".join(r.notes), title=f"! {r.check} (suite error)",
                                border_style="magenta"))
    style = "green" if report.conforms else "bold red"
    console.print(f"[{style}]{report.target}: {report.verdict}[/] ({report.seconds:.1f}s)")


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
    table.add_column("failing checks (most likely axis)", overflow="fold")
    table.add_column("fingerprint", overflow="fold")
    table.add_column("time", justify="right", no_wrap=True)
    for rep in reports:
        if not rep.installed:
            table.add_row(rep.target, "", "[dim]not installed[/]", "", rep.message, "", "")
            continue
        counts = {v: sum(r.verdict == v for r in rep.results) for v in SYMBOLS}
        tally = f"{counts['pass']}/{counts['acceptable']}/{counts['fail'] + counts['error']}/{counts['not supported']}"
        failing = ", ".join(f"{r.check} ({r.axis.split(':')[0].split(' (')[0] if r.axis else '?'})"
                            for r in rep.results if r.verdict in ("fail", "error"))
        style = "green" if rep.conforms else "bold red"
        table.add_row(rep.target, rep.profile, f"[{style}]{rep.verdict}[/]", tally, failing or "—",
                      fingerprint_short(rep.fingerprint), f"{rep.seconds:.0f}s")
    console.print(table)


def write_json(path: str, payload) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
