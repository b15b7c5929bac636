"""Executable docs: every code block of README.md and docs/*.md runs as written.

The convention, by the block's info string (the words after the opening fence):

``python``
    Run.  The ``python`` blocks of one file run in order in one namespace, as a
    reader pasting them into one session would (a later block may use an earlier
    one's names), in a fresh interpreter whose working directory is empty.
``sh``
    Run with ``bash -e``, in the same kind of directory, with this interpreter's
    ``bin`` directory first on ``PATH`` (so ``radam-ref`` is the one under test).
``text output``
    The exact standard output of the block just before it (compared after
    stripping trailing whitespace; ``...`` matches anything, as in doctest).
``text``
    Not code: pseudo-code, a file listing, a formula.
``python no-run REASON`` / ``sh no-run REASON``
    Shown, not run, with the reason in the info string (GitHub still highlights
    the first word): for commands that take minutes (``make test``), need a GPU,
    or belong to a reader's own project.
``python gpu`` / ``sh gpu``
    Run only where CuPy sees a GPU; skipped here with that reason.

Any other info string, or none, fails: a reader must be able to tell what a
block is.  A block that raises, exits non-zero or runs past its timeout fails,
naming the file and line.
"""

from __future__ import annotations

import doctest
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TIMEOUT_S = 600

_FENCE = re.compile(r"^(```+)(.*)$")


def extract(text: str) -> list[dict]:
    """The fenced blocks of a Markdown text: ``{"line", "info", "source"}``."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, info, start = match.group(1), match.group(2).strip(), i + 1
        j = start
        while j < len(lines) and lines[j].strip() != fence:
            j += 1
        blocks.append({"line": start, "info": info, "source": "\n".join(lines[start:j]) + "\n"})
        i = j + 1
    return blocks


def _kind(info: str) -> tuple[str, str]:
    """(kind, reason): kind is run-python, run-sh, output, text, no-run, gpu or bad."""
    words = info.split(maxsplit=2)
    if not words:
        return "bad", "a block without an info string"
    lang, rest = words[0], words[1:]
    if lang == "text":
        return ("output", "") if rest[:1] == ["output"] else ("text", "")
    if lang not in ("python", "sh"):
        return "bad", f"unknown info string {info!r}"
    if not rest:
        return f"run-{lang}", ""
    if rest[0] == "no-run":
        reason = rest[1] if len(rest) > 1 else ""
        return ("no-run", reason) if reason.strip() else ("bad", f"{info!r}: no-run without a reason")
    if rest[0] == "gpu":
        return "gpu", "needs an NVIDIA GPU and CuPy"
    return "bad", f"unknown info string {info!r}"


def _plan(path: Path) -> list[dict]:
    """The blocks of ``path`` with their kind and expected output attached."""
    blocks = extract(path.read_text(encoding="utf-8"))
    for block in blocks:
        block["kind"], block["reason"] = _kind(block["info"])
        block["id"] = f"{path.name}:{block['line']}"
    for prev, block in zip(blocks, blocks[1:]):
        if block["kind"] == "output":
            prev["expected"] = block["source"]
    return blocks


_RUNNER = textwrap.dedent('''
    import contextlib, io, json, sys, traceback
    blocks = json.load(open(sys.argv[1]))
    namespace = {"__name__": "__main__"}
    results = []
    for block in blocks:
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(block["source"], block["id"], "exec"), namespace)
        except BaseException:
            results.append({"id": block["id"], "ok": False, "out": out.getvalue(),
                            "error": traceback.format_exc()})
            break
        results.append({"id": block["id"], "ok": True, "out": out.getvalue()})
    json.dump(results, open(sys.argv[2], "w"))
''')


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["MPLBACKEND"] = "Agg"
    return env


def _same_output(expected: str, got: str) -> bool:
    checker = doctest.OutputChecker()
    strip = lambda s: "\n".join(line.rstrip() for line in s.strip("\n").splitlines()) + "\n"  # noqa: E731
    return checker.check_output(strip(expected), strip(got), doctest.ELLIPSIS)


def _gpu_available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_every_block_says_what_it_is(path):
    bad = [f"{b['id']}: {b['reason']}" for b in _plan(path) if b["kind"] == "bad"]
    assert not bad, bad


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_every_block_runs_as_written(path, tmp_path):
    blocks = _plan(path)
    gpu = _gpu_available()
    runnable = [b for b in blocks if b["kind"] in ("run-python", "run-sh") or (b["kind"] == "gpu" and gpu)]
    if not runnable:
        reasons = sorted({f"{b['kind']}: {b['reason']}" for b in blocks if b["kind"] in ("no-run", "gpu")})
        pytest.skip(f"no block of {path.name} runs here ({'; '.join(reasons) or 'only text'})")
    failures = []
    python = [b for b in runnable if b["info"].split()[0] == "python"]
    if python:
        work = tmp_path / "python"
        work.mkdir()
        (tmp_path / "blocks.json").write_text(json.dumps(python))
        (tmp_path / "runner.py").write_text(_RUNNER)
        proc = subprocess.run([sys.executable, str(tmp_path / "runner.py"), str(tmp_path / "blocks.json"),
                               str(tmp_path / "results.json")], cwd=work, env=_env(),
                              capture_output=True, text=True, timeout=TIMEOUT_S)
        assert proc.returncode == 0, f"{path.name}: the block runner failed:\n{proc.stderr[-4000:]}"
        results = {r["id"]: r for r in json.loads((tmp_path / "results.json").read_text())}
        for block in python:
            result = results.get(block["id"])
            if result is None:
                failures.append(f"{block['id']}: not reached (an earlier block failed)")
            elif not result["ok"]:
                failures.append(f"{block['id']}: raised\n{result['error'][-3000:]}")
            elif "expected" in block and not _same_output(block["expected"], result["out"]):
                failures.append(f"{block['id']}: printed\n{result['out']}\nthe doc shows\n{block['expected']}")
    for block in runnable:
        if block["info"].split()[0] != "sh":
            continue
        work = tmp_path / f"sh{block['line']}"
        work.mkdir()
        proc = subprocess.run(["bash", "-e", "-c", block["source"]], cwd=work, env=_env(),
                              capture_output=True, text=True, timeout=TIMEOUT_S)
        if proc.returncode != 0:
            failures.append(f"{block['id']}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        elif "expected" in block and not _same_output(block["expected"], proc.stdout):
            failures.append(f"{block['id']}: printed\n{proc.stdout}\nthe doc shows\n{block['expected']}")
    assert not failures, "\n\n".join(failures)


def test_the_extractor_reads_the_conventions():
    text = ("x\n```python\nprint(1)\n```\n\n```text output\n1\n```\n"
            "```sh no-run takes an hour\nmake test\n```\n```\nplain\n```\n````text\n```\n````\n")
    blocks = extract(text)
    assert [b["info"] for b in blocks] == ["python", "text output", "sh no-run takes an hour", "", "text"]
    assert blocks[4]["source"] == "```\n"
    assert [_kind(b["info"])[0] for b in blocks] == ["run-python", "output", "no-run", "bad", "text"]
    assert _kind("sh no-run")[0] == "bad"
    assert _same_output("a ... c\n", "a b c  \n") and not _same_output("1\n", "2\n")
