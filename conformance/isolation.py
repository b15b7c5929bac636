"""Run one target's conformance in a child process that cannot take the runner down.

The suite runs code written by someone else: a target may call ``sys.exit``,
abort, crash in native code, hang, or corrupt the interpreter it runs in.  So
:func:`run_isolated` starts a fresh Python for each target
(``python -m radam_ref.conformance.isolation JOB``) and the parent owns the
clock, as pytest-isolate does: it polls in short slices, kills the child's whole
process group when the time limit expires, and always reaps it.

The child streams what it does as JSON lines into an events file, flushed one
line at a time (as xdist workers send each report the moment it exists):
``{"event": "start", "stage": NAME}`` before each stage (preflight,
fingerprint, each check), ``{"event": "result", "result": {...}}`` after each
check, and ``{"event": "report", "report": {...}}`` at the end.  Whatever the
child completed survives its death; only the stage in flight is blamed.

Endings are classified separately by exit code and signal (pytest-forked calls
``os._exit(0)`` "signal 0"; we do not):

* a ``report`` event → that report;
* the time limit → "error: timed out after N s during <stage>";
* killed by a signal → "error: killed by SIGABRT (signal 6) during <stage>";
* a non-zero exit → "error: exited with status 3 during <stage>";
* exit 0 without a report → "error: exited with status 0 before finishing"
  (``sys.exit(0)`` or ``os._exit(0)`` inside the target).

Every such ending gets the verdict "error", never "conforms"; the last lines of
the child's stdout and stderr (both captured) are attached.  The child disables
Hypothesis's example database, so nothing is written in the working directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Callable

__all__ = ["DEFAULT_TIMEOUT", "run_isolated", "ending"]

#: Default time limit per target, in seconds (``--timeout``).
DEFAULT_TIMEOUT = 300.0

_TAIL_LINES = 15
_POLL = 0.05


def _tail(path: str, lines: int = _TAIL_LINES) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _output(out_path: str, err_path: str) -> str:
    """The last lines the target wrote to stdout and to stderr, then, after a native
    crash, the innermost frames faulthandler printed (not its module list)."""
    stdout = _tail(out_path, 8)
    stderr = _tail(err_path, 200)
    head, sep, crash = stderr.partition("Fatal Python error:")
    parts = [stdout, "\n".join(head.rstrip().splitlines()[-8:])]
    if sep:
        lines = [ln for ln in (sep + crash).splitlines() if ln.strip() and not ln.startswith("Extension modules:")]
        frames = [ln for ln in lines if ln.lstrip().startswith("File ")][:4]
        parts.append("\n".join([lines[0], *frames]))
    return "\n".join(p for p in parts if p.strip())


def ending(returncode: int | None, timed_out: bool, timeout: float, stage: str | None) -> str:
    """Why a child ended without a report, in words (see the module docstring)."""
    where = f" during {stage}" if stage else ""
    if timed_out:
        return f"timed out after {timeout:g} s{where} (the per-target limit; raise it with --timeout)"
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name} (signal {-returncode}){where}: the target crashed the process"
    if returncode:
        return f"exited with status {returncode}{where}: the target ended the process (sys.exit or os._exit?)"
    return f"exited with status 0 before finishing{where}: the target ended the process (sys.exit(0) or os._exit(0)?)"


def _child_env(tmp: str, extra: dict | None) -> dict:
    """The child's environment: Hypothesis's files (example database, constants
    cache) go to the run's temporary directory, not the working directory."""
    env = {**os.environ, **(extra or {})}
    env.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tmp, "hypothesis"))
    return env


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        try:
            proc.kill()
        except OSError:
            pass


def run_isolated(name: str, kwargs: dict | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 on_event: Callable | None = None, env: dict | None = None, **options):
    """Run :func:`~.runner.run_conformance` ``(name, kwargs, **options)`` in a child
    process with a time limit of ``timeout`` seconds; return its :class:`Report`.

    ``on_event(event)`` gets each event dict as it arrives (progress).
    Raises :class:`TargetUnavailable` / ValueError as the in-process call would.
    """
    from .adapters.registry import TargetUnavailable, target_label
    from .runner import Report, result_from_json

    kwargs = dict(kwargs or {})
    label = target_label(name, kwargs)
    with tempfile.TemporaryDirectory(prefix="radam-ref-") as tmp:
        job = os.path.join(tmp, "job.json")
        events_path = os.path.join(tmp, "events.jsonl")
        out_path, err_path = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
        with open(job, "w", encoding="utf-8") as fh:
            json.dump({"name": name, "kwargs": kwargs, "options": options, "events": events_path,
                       "sys_path": [p for p in sys.path if p]}, fh)
        open(events_path, "w").close()
        start = time.monotonic()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen([sys.executable, "-m", "radam_ref.conformance.isolation", job],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    env=_child_env(tmp, env), start_new_session=True)
        results, stage, final, raised, header = [], None, None, None, None
        timed_out = False
        buffer = b""
        with open(events_path, "rb") as events:
            try:
                while True:
                    chunk = events.read()
                    if chunk:
                        buffer += chunk
                        *lines, buffer = buffer.split(b"\n")
                        for line in lines:
                            if not line.strip():
                                continue
                            try:
                                event = json.loads(line)
                            except ValueError:
                                continue  # not ours (a target writing into the events file?)
                            kind = event.get("event")
                            if kind == "start":
                                stage = event["stage"]
                            elif kind == "result":
                                results.append(result_from_json(event["result"]))
                                stage = None
                            elif kind == "header":
                                header = Report.from_json(event["report"])
                            elif kind == "report":
                                final = Report.from_json(event["report"])
                            elif kind == "raise":
                                raised = event
                            if on_event:
                                on_event(event)
                    if proc.poll() is not None:
                        if not chunk:
                            break
                        continue
                    if time.monotonic() - start > timeout:
                        timed_out = True
                        _kill(proc)
                        proc.wait()
                        break
                    time.sleep(_POLL)
            finally:
                if proc.poll() is None:
                    _kill(proc)
                proc.wait()  # always reap
                # What the target started and left running (it shares the child's process
                # group, which the kernel keeps reserved while a member lives): never outlives the run.
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
        elapsed = time.monotonic() - start
        output = _output(out_path, err_path)
    if raised is not None and final is None:
        if raised["kind"] == "unavailable":
            raise TargetUnavailable(raised["message"])
        raise ValueError(raised["message"])
    if final is not None and not timed_out:
        return final
    report = header or Report(label, options.get("profile") or "", options.get("dtype") or "", kwargs=kwargs,
                              name=name)
    report.results, report.outcome, report.output, report.seconds = results, "error", output, elapsed
    died = f"{label}: " + ending(proc.returncode, timed_out, timeout, stage)
    report.message = died if not report.message else f"{report.message}\n{died}"
    if stage and stage not in ("preflight", "fingerprint"):
        from .checks import CheckResult

        report.results.append(CheckResult(stage, "error", died.split(": ", 1)[1]))
    done = {r.check for r in report.results}
    remaining = [c for c in (options.get("checks") or _all_checks()) if c not in done]
    if remaining:
        report.message += f"; not run: {', '.join(remaining)}"
    return report


def _all_checks() -> list:
    from .checks import CHECKS

    return list(CHECKS)


def _child(job_path: str) -> int:
    with open(job_path, encoding="utf-8") as fh:
        job = json.load(fh)
    events = open(job["events"], "a", encoding="utf-8", buffering=1)

    for entry in reversed(job.get("sys_path", ())):  # what the parent could import, the child can
        if entry not in sys.path:
            sys.path.insert(0, entry)

    def emit(**event) -> None:
        events.write(json.dumps(event, ensure_ascii=False, default=str) + "\n")
        events.flush()

    import faulthandler

    faulthandler.enable()  # a native crash leaves its Python stack in the output tail
    from hypothesis import settings

    settings.register_profile("radam-ref-isolated", parent=settings.default, database=None)
    settings.load_profile("radam-ref-isolated")

    from .adapters.registry import TargetUnavailable
    from .runner import run_conformance

    try:
        report = run_conformance(job["name"], job["kwargs"], **job["options"],
                                 on_start=lambda stage: emit(event="start", stage=stage),
                                 on_report=lambda r: emit(event="header", report=r.to_json()),
                                 on_result=lambda r: emit(event="result", result=r.to_json()))
    except TargetUnavailable as exc:
        emit(event="raise", kind="unavailable", message=str(exc))
        return 0
    except ValueError as exc:
        emit(event="raise", kind="value", message=str(exc))
        return 0
    emit(event="report", report=report.to_json())
    events.close()
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
