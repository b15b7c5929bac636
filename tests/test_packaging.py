"""Packaging: one import root, and a core that imports nothing heavy.

* A wheel built from a copy of the source tree holds only ``radam_ref/`` (plus its
  ``.dist-info``): ``backends/`` and ``conformance/`` ship as
  ``radam_ref.backends`` and ``radam_ref.conformance``, never as top-level modules.
  Installed with ``pip install --no-deps --target``, the copy imports from a
  subprocess whose cwd is the install directory (not the repository).
* ``import radam_ref`` pulls in none of numpy, torch, cupy, jax (as
  array-api-compat's tests/test_no_dependencies.py does for its core).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "torch", "cupy", "jax")


def _run(args, cwd, env_extra=None, timeout=300):
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env.update(env_extra or {})
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_import_radam_ref_imports_no_array_library(tmp_path):
    code = (
        "import sys, json\n"
        "import radam_ref\n"
        "import radam_ref.cli\n"
        "cfg = radam_ref.RAdamConfig.from_profile('torch')\n"
        "s = radam_ref.schedule(6, threshold=5.0)\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = _run([sys.executable, "-c", code], cwd=tmp_path)
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_wheel_has_one_import_root_and_installs(tmp_path):
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.egg-info", "build", "dist")
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("radam_ref", "backends", "conformance"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--quiet", "-w", str(wheels), str(src)], cwd=tmp_path)
    (wheel,) = wheels.glob("radam_ref-*.whl")

    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    top = {n.split("/", 1)[0] for n in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info == {"radam_ref"}, sorted(top)
    assert len(dist_info) == 1
    for sub in ("radam_ref/backends/__init__.py", "radam_ref/conformance/__init__.py",
                "radam_ref/_step.py"):
        assert sub in names
    assert not any(n.startswith(("backends/", "conformance/", "tests/")) for n in names)
    # The CUDA sources ship with the backends (package-data).
    assert any(n.startswith("radam_ref/backends/") and n.endswith(".cuh") for n in names)

    target = tmp_path / "site"
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
          "--target", str(target), str(wheel)], cwd=tmp_path)
    assert not (target / "backends").exists() and not (target / "conformance").exists()
    code = (
        "import json, radam_ref, radam_ref.backends, radam_ref.conformance\n"
        "import importlib.util as u\n"
        "print(json.dumps([radam_ref.__file__, radam_ref.backends.__file__,\n"
        "                  radam_ref.conformance.__file__,\n"
        "                  u.find_spec('backends') is None, u.find_spec('conformance') is None,\n"
        "                  radam_ref.schedule(5).rectified]))\n"
    )
    out = _run([sys.executable, "-c", code], cwd=target, env_extra={"PYTHONPATH": str(target)})
    core, backends, conformance, no_backends, no_conformance, rectified = json.loads(
        out.strip().splitlines()[-1])
    for path in (core, backends, conformance):
        assert Path(path).resolve().is_relative_to(target.resolve()), path
    assert Path(backends).parent.name == "backends" and Path(backends).parent.parent.name == "radam_ref"
    assert no_backends and no_conformance
    assert rectified is True
