"""Extras that match the entry points: each extra installs what its commands import.

How the test installs, offline and fast:

* The wheel is built once from a copy of the source tree (``pip wheel --no-deps
  --no-build-isolation``) and installed with ``pip install --no-deps --no-index``
  into one fresh virtual environment (no system site-packages, no pip): the
  core install, whose only dependency, array-api-compat, is exposed as below.
* An extra is "installed" by exposing exactly the distributions pip would install
  for it: the closure of the wheel's own ``Requires-Dist`` for that extra (markers
  evaluated, nested ``radam-ref[...]`` extras expanded, then each dependency's
  requirements recursively), taken from this test environment, where they are
  already installed.  Their top-level files and ``.dist-info`` folders are
  symlinked into one directory per extra, which the virtual environment adds as a
  site directory (``site.addsitedir``, so ``.pth`` files work) when
  ``RADAM_TEST_EXTRA_SITE`` names it.  Nothing is downloaded; an extra whose
  closure is not installed here (``cupy`` without a GPU) is skipped, saying so.
  Versions are this environment's, not a resolver's choice, and a namespace
  folder shared by two distributions is exposed whole: the test checks imports,
  not version resolution.
* In each environment: ``radam-ref --help`` (the console script), every
  subcommand's ``--help``, and the import of every optional module; a subcommand
  or module whose extra is missing must fail with one line naming the extra
  (exit status 2 for commands, a ``ModuleNotFoundError`` subclass for imports),
  never a traceback.  Then one quick real command per extra.

The measured matrix (extra -> subcommands that work) is printed (``pytest -s``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import pytest

packaging_requirements = pytest.importorskip("packaging.requirements")
from packaging.utils import canonicalize_name  # noqa: E402

from radam_ref._extras import EXTRAS  # noqa: E402
from radam_ref.cli import SUBCOMMANDS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SELF = "radam-ref"
#: Modules that need an extra, and the extra their error must name.
OPTIONAL_MODULES = {
    "radam_ref.backends.numpy": "numpy",
    "radam_ref.backends.torch": "torch",
    "radam_ref.backends.cupy": "cupy",
    "radam_ref.backends.bench": "bench",
    "radam_ref.conformance": "cli",
    "radam_ref.conformance.vectors": "cli",
    "radam_ref.paper": "paper",
    "radam_ref.backends.keras": "keras",
}
#: Keras 3 also needs one of its backends (TensorFlow, JAX or PyTorch), which the
#: ``keras`` extra leaves to the user; without one, the module says so instead.
NEEDS_A_BACKEND = {"radam_ref.backends.keras": "KERAS_BACKEND"}
#: pip distribution name -> import name, where they differ.
IMPORT_NAMES = {"scikit-learn": "sklearn", "cupy-cuda12x": "cupy"}


def _env(extra_site: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "VIRTUAL_ENV")}
    env["RADAM_TEST_EXTRA_SITE"] = str(extra_site) if extra_site else ""
    env["MPLBACKEND"] = "Agg"
    env["NUMBA_CACHE_DIR"] = str(extra_site.parent / "numba-cache") if extra_site else ""
    return env


def _run(args, cwd, env, timeout=300, check=True):
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


# --------------------------------------------------------------------------- #
# The wheel, its metadata, the environment
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.egg-info", "build", "dist")
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("radam_ref", "backends", "conformance"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    out = tmp / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "--quiet", "-w", out, src], cwd=tmp, env=_env(None))
    (found,) = out.glob("radam_ref-*.whl")
    return found


def _wheel_requirements(wheel: Path) -> list:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(zf.read(name).decode("utf-8"))
    return [packaging_requirements.Requirement(r) for r in meta.get_all("Requires-Dist") or []]


def _wheel_extras(wheel: Path) -> list:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(zf.read(name).decode("utf-8"))
    return meta.get_all("Provides-Extra") or []


def _applies(req, extra: str) -> bool:
    return req.marker is None or req.marker.evaluate({"extra": extra})


def closure(wheel: Path, requested: list) -> tuple[set, list]:
    """Distributions pip would install for ``radam-ref[requested]`` (``[]``: core),
    and the ones not installed here."""
    own = _wheel_requirements(wheel)
    todo, seen, missing = [], set(), []
    extras, pending = set(), list(requested)
    while pending:                      # expand radam-ref[...] self-references
        e = pending.pop()
        if e in extras:
            continue
        extras.add(e)
        for req in own:
            if _applies(req, e) and canonicalize_name(req.name) == SELF:
                pending.extend(req.extras)
    for req in own:
        if canonicalize_name(req.name) == SELF:
            continue
        if _applies(req, "") or any(_applies(req, e) for e in extras):
            todo.append((req.name, set(req.extras)))
    while todo:
        name, dist_extras = todo.pop()
        key = canonicalize_name(name)
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        for text in dist.requires or []:
            req = packaging_requirements.Requirement(text)
            if _applies(req, "") or any(_applies(req, e) for e in dist_extras):
                todo.append((req.name, set(req.extras)))
    return seen, missing


def expose(dists: set, site: Path) -> None:
    """Symlink the top-level files and folders of ``dists`` into ``site``."""
    site.mkdir(parents=True)
    for name in dists:
        dist = metadata.distribution(name)
        base = Path(dist.locate_file(""))
        tops = {Path(str(f)).parts[0] for f in dist.files or () if not str(f).startswith("..")}
        tops.add(Path(dist._path).name)  # the .dist-info folder  # noqa: SLF001
        for top in tops:
            if top == "__pycache__" or (site / top).exists():
                continue
            target = base / top
            if target.exists():
                (site / top).symlink_to(target)


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", env_dir], cwd=env_dir.parent, env=_env(None))
    python = env_dir / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
          "--quiet", wheel], cwd=env_dir.parent, env=_env(None))
    (site_packages,) = (env_dir / "lib").glob("python*/site-packages")
    (site_packages / "_radam_test_extra_site.pth").write_text(
        "import os, site; (os.environ.get('RADAM_TEST_EXTRA_SITE') or None) and "
        "site.addsitedir(os.environ['RADAM_TEST_EXTRA_SITE'])\n")
    return env_dir


_PROBE = textwrap.dedent('''
    import contextlib, importlib, io, json, sys
    import radam_ref
    from radam_ref.cli import main, SUBCOMMANDS
    out = {"radam_ref": radam_ref.__file__, "commands": {}, "modules": {}}
    for sub in SUBCOMMANDS:
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main([sub.name, "--help"])
            except SystemExit as exc:
                code = exc.code
        out["commands"][sub.name] = {"code": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}
    for name in json.loads(sys.argv[1]):
        try:
            importlib.import_module(name)
            out["modules"][name] = {"ok": True}
        except ImportError as exc:
            out["modules"][name] = {"ok": False, "type": type(exc).__name__, "message": str(exc)}
    print(json.dumps(out))
''')

#: One quick real command per extra: (argv, text its output must contain).
QUICK = {
    None: (["python", "-c", "import radam_ref; print(radam_ref.schedule(5, beta2=0.999).rectified)"], "True"),
    "numpy": (["radam-ref", "demo", "--steps", "2"], "step 2: x ="),
    "torch": (["python", "-c",
               "import torch; from radam_ref.backends.torch import RAdam\n"
               "p = torch.nn.Parameter(torch.zeros(3)); opt = RAdam([p], lr=0.1, foreach=False)\n"
               "p.grad = torch.ones(3); opt.step(); print(p.detach().tolist())"], "[-0.1"),
    "jax": (["python", "-c",
             "import jax.numpy as jnp, optax, radam_ref\n"
             "tx = optax.chain(radam_ref.optax_transform(radam_ref.RAdamConfig(lr=0.1)))\n"
             "p = jnp.zeros(3); s = tx.init(p); u, s = tx.update(jnp.ones(3), s, p); print(u)"], "-0.1"),
    # Keras alone has no working backend (its default, TensorFlow, is not a dependency;
    # its NumPy backend needs SciPy): the module must say so, naming KERAS_BACKEND.
    "keras": (["python", "-c", "import radam_ref.backends.keras"], "!KERAS_BACKEND"),
    "keras,jax": (["python", "-c",
                   "import keras; from radam_ref.backends.keras import RAdam\n"
                   "v = keras.Variable([0.0, 0.0, 0.0]); opt = RAdam(learning_rate=0.1)\n"
                   "opt.apply_gradients([(keras.ops.ones(3), v)]); print(keras.ops.convert_to_numpy(v))"],
                  "-0.1"),
    "cli": (["radam-ref", "vectors", "validate", "--no-regenerate"], "ok "),
    "bench": (["radam-ref", "bench", "--impls", "spec_numpy,plain_numpy", "--layouts", "single",
               "--size", "4096", "--repeat", "1", "--warmup", "1"], "spec"),
    "paper": (["radam-ref", "paper", "--size", "tiny", "--only", "figure8", "--out", "out"], ""),
    "all": (["radam-ref", "conformance", "radam_ref.step", "--check", "threshold", "--max-examples", "2",
             "--no-fingerprint", "--no-progress"], "threshold"),
}

MATRIX: dict = {}


def _extras_under_test():
    return [None, "numpy", "torch", "jax", "cupy", "keras", "keras,jax", "cli", "bench", "paper", "all"]


def test_extras_table_matches_pyproject(wheel):
    declared = set(_wheel_extras(wheel)) - {"test", "all"}
    assert declared == set(EXTRAS)
    own = _wheel_requirements(wheel)
    for extra, modules in EXTRAS.items():
        dists = {canonicalize_name(r.name) for r in own if r.marker and _applies(r, extra)
                 and not _applies(r, "")}
        imports = {IMPORT_NAMES.get(d, d.replace("-", "_")) for d in dists}
        assert imports == set(modules), (extra, imports, modules)
    all_extras = next(r for r in own if canonicalize_name(r.name) == SELF and _applies(r, "all"))
    assert set(all_extras.extras) == set(EXTRAS) - {"cupy"}
    for sub in SUBCOMMANDS:
        assert set(sub.needs()) <= set(EXTRAS[sub.extra]), sub


@pytest.mark.parametrize("extra", _extras_under_test(), ids=lambda e: e or "core")
def test_extra_installs_what_its_commands_import(extra, venv, wheel, tmp_path):
    requested = extra.split(",") if extra else []
    dists, missing = closure(wheel, requested)
    if missing:
        pytest.skip(f"[{extra}] needs {', '.join(sorted(missing))}, not installed here (no GPU / offline)")
    site = tmp_path / "site"
    expose(dists, site)
    env = _env(site)
    if "jax" in requested and "keras" in requested:
        env["KERAS_BACKEND"] = "jax"
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    python = venv / "bin" / "python"
    work = tmp_path / "work"
    work.mkdir()

    probe = _run([python, "-c", _PROBE, json.dumps(list(OPTIONAL_MODULES))], cwd=work, env=env)
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    assert Path(found["radam_ref"]).is_relative_to(venv), found["radam_ref"]   # the wheel, not the source

    top = _run([venv / "bin" / "radam-ref", "--help"], cwd=work, env=env)
    for sub in SUBCOMMANDS:
        assert sub.name in top.stdout

    works = []
    for sub in SUBCOMMANDS:
        result = found["commands"][sub.name]
        if result["code"] == 0:
            works.append(sub.name)
            assert "usage: radam-ref " + sub.name in result["stdout"]
        else:
            assert result["code"] == 2, (sub.name, result)
            lines = result["stderr"].strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in result["stderr"], result["stderr"]
            assert f"pip install 'radam-ref[{sub.extra}]'" in lines[0], lines[0]
            assert sub.extra not in requested and extra != "all", f"[{extra}] should run {sub.name}: {lines[0]}"
    for name, want_extra in OPTIONAL_MODULES.items():
        result = found["modules"][name]
        if not result["ok"]:
            if name in NEEDS_A_BACKEND and NEEDS_A_BACKEND[name] in result["message"]:
                continue
            if name not in NEEDS_A_BACKEND:
                assert result["type"] == "MissingExtraError", result
            assert f"pip install 'radam-ref[{want_extra}]'" in result["message"], result
            assert want_extra not in requested and (extra != "all" or want_extra == "cupy"), (extra, result)
    MATRIX[extra or "core"] = works
    if extra is None:
        assert works == [], works

    argv, needle = QUICK[extra]
    argv = [python if argv[0] == "python" else venv / "bin" / argv[0], *argv[1:]]
    proc = _run(argv, cwd=work, env=env, check=False)
    if needle.startswith("!"):   # must fail, saying why in its last line
        assert proc.returncode != 0 and needle[1:] in proc.stderr.strip().splitlines()[-1], proc.stderr[-3000:]
    else:
        assert proc.returncode == 0, f"[{extra}] {argv[1:]}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        assert needle in proc.stdout, proc.stdout[-3000:]
    print(f"\n[{extra or 'core'}] works: {', '.join(works) or '(radam-ref --help only)'}; "
          f"imports: {', '.join(n for n, r in found['modules'].items() if r['ok']) or 'none'}")


def test_pytest_runs_unaffected_next_to_the_core_install(venv, wheel, tmp_path):
    """The conformance suite's pytest plugin is an entry point of every install; with
    the core alone it must load as a no-op, not break the user's own pytest runs."""
    dists, missing = closure(wheel, [])
    todo = ["pytest"]
    while todo:                                   # pytest and its requirements
        name = todo.pop()
        if canonicalize_name(name) in dists:
            continue
        dists.add(canonicalize_name(name))
        for text in metadata.distribution(name).requires or []:
            req = packaging_requirements.Requirement(text)
            if _applies(req, ""):
                todo.append(req.name)
    assert not missing
    site = tmp_path / "site"
    expose(dists, site)
    work = tmp_path / "work"
    work.mkdir()
    (work / "test_user.py").write_text("def test_user():\n    assert 1 + 1 == 2\n")
    proc = _run([venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                cwd=work, env=_env(site), check=False)
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout + proc.stderr
    plugins = _run([venv / "bin" / "python", "-c",
                    "import radam_ref._pytest_entry as p; print(sorted(n for n in vars(p) if n.startswith('pytest_')))"],
                   cwd=work, env=_env(site))
    assert plugins.stdout.strip() == "[]"


def test_pytest_entry_exposes_the_plugin_with_the_cli_extra():
    import radam_ref._pytest_entry as entry
    from radam_ref.conformance import pytest_plugin

    hooks = {n for n in vars(pytest_plugin) if n.startswith("pytest_")}
    assert hooks and all(getattr(entry, n) is getattr(pytest_plugin, n) for n in hooks)
