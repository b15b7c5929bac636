"""The C and JavaScript ports (ports/c, ports/js), checked through the process protocol.

Each port is built (C: the system compiler ``cc`` into a temporary folder) or
loaded (JS: ``node``) and run through the whole conformance suite with the
default budget as ``exec:COMMAND``; both must conform to the paper profile.
Their step scalars are compared with the spec's correctly rounded ones
(:func:`radam_ref.schedule`, 60-digit decimals) in ulps, and the C sources must
compile warning-free as strict C99 and as C++.  A missing toolchain skips with
the reason.  The helpers here (``build_c``, ``js_command``) also build the
mutants of ``tests/meta/test_port_mutants.py``.
"""

from __future__ import annotations

import ctypes
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import radam_ref
from radam_ref.conformance import run_conformance

ROOT = Path(__file__).resolve().parents[1]
C_DIR = ROOT / "ports" / "c"
JS_DIR = ROOT / "ports" / "js"
CC = shutil.which("cc")
CXX = shutil.which("c++")
NODE = shutil.which("node")
STRICT = ["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off"]

needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler `cc` on PATH (install gcc or clang; see README)")
needs_node = pytest.mark.skipif(NODE is None, reason="no `node` on PATH (install Node.js >= 18; see README)")


def build_c(out_dir: Path, source_dir: Path = C_DIR, *, shared: bool = False) -> Path:
    """Compile the C port in ``source_dir`` into ``out_dir``: the protocol driver
    (or, with ``shared``, the library alone as a shared object for ctypes)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if shared:
        out = out_dir / "libradam.so"
        cmd = [CC, *STRICT, "-O2", "-shared", "-fPIC", str(source_dir / "radam.c"), "-o", str(out), "-lm"]
    else:
        out = out_dir / "radam-driver"
        cmd = [CC, *STRICT, "-O2", str(source_dir / "radam.c"), str(source_dir / "driver.c"), "-o", str(out), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stderr}"
    return out


def js_command(source_dir: Path = JS_DIR) -> str:
    return f"exec:{NODE} {source_dir / 'driver.mjs'}"


@pytest.fixture(scope="module")
def c_driver(tmp_path_factory) -> Path:
    if CC is None:
        pytest.skip("no C compiler `cc` on PATH (install gcc or clang; see README)")
    return build_c(tmp_path_factory.mktemp("c-port"))


# --------------------------------------------------------------------------- #
# The acceptance runs: the whole catalogue, default budget
# --------------------------------------------------------------------------- #

# What each port declares: everything but these checks is run and must pass.
_NOT_SUPPORTED = {
    "c": {"low_precision", "autodiff", "complex"},
    "js": {"float32", "low_precision", "autodiff", "complex"},
}
_EXERCISED = {
    "js": ("trajectories", "threshold", "degeneration", "param_groups", "state_dict", "maximize",
           "weight_decay_modes", "eps_zero", "grad_none", "zero_grads", "long_horizon", "side_effects"),
}
_EXERCISED["c"] = _EXERCISED["js"] + ("float32",)


def _conforms(target: str, port: str) -> None:
    start = time.perf_counter()
    report = run_conformance(target, profile="paper")
    seconds = time.perf_counter() - start
    table = "\n".join(f"{r.check:20} {r.verdict:14} {r.summary[:90]}" for r in report.results)
    print(f"\n{target}: {report.verdict} in {seconds:.1f} s\n{table}")
    assert report.verdict == "conforms", table
    verdicts = {r.check: r.verdict for r in report.results}
    unsupported = {c for c, v in verdicts.items() if v == "not supported"}
    assert _NOT_SUPPORTED[port] <= unsupported, table
    # Every capability the port declares is exercised, over the protocol.
    for name in _EXERCISED[port]:
        assert verdicts[name] in ("pass", "acceptable"), table
    assert report.fingerprint is not None and "paper" in report.fingerprint.profiles


@needs_cc
def test_c_port_conforms_to_the_paper_profile(c_driver):
    _conforms(f"exec:{c_driver}", "c")


@needs_node
def test_js_port_conforms_to_the_paper_profile():
    _conforms(js_command(), "js")


_PROFILE_CHECKS = ["trajectories", "threshold", "weight_decay_modes", "maximize"]


@needs_cc
@pytest.mark.parametrize("profile", [p for p in radam_ref.PROFILES if p != "paper"])
def test_c_port_follows_every_profile_it_can_be_told(c_driver, profile):
    report = run_conformance(f"exec:{c_driver}", profile=profile, checks=_PROFILE_CHECKS, max_examples=3,
                             fingerprint=False)
    assert report.verdict == "conforms", [(r.check, r.verdict, r.summary[:200]) for r in report.results]


@needs_node
@pytest.mark.parametrize("profile", [p for p in radam_ref.PROFILES if p != "paper"])
def test_js_port_follows_every_profile_it_can_be_told(profile):
    report = run_conformance(js_command(), profile=profile, checks=_PROFILE_CHECKS, max_examples=3,
                             fingerprint=False)
    assert report.verdict == "conforms", [(r.check, r.verdict, r.summary[:200]) for r in report.results]


# --------------------------------------------------------------------------- #
# C: strict compilation, C++ compilation
# --------------------------------------------------------------------------- #


@needs_cc
def test_c_library_and_driver_compile_as_strict_c99(tmp_path):
    for source in ("radam.c", "driver.c"):
        cmd = [CC, *STRICT, "-c", str(C_DIR / source), "-o", str(tmp_path / (source + ".o"))]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(CXX is None, reason="no C++ compiler `c++` on PATH")
def test_c_library_compiles_as_cxx(tmp_path):
    user = tmp_path / "user.cpp"
    user.write_text('#include "radam.h"\nint main() { radam_config c; radam_config_paper(&c);\n'
                    '  double p = 1, g = 1, m = 0, v = 0; return radam_step(1, &c, 1, &p, &g, &m, &v); }\n')
    for cmd in ([CXX, "-x", "c++", "-std=c++11", "-pedantic", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off",
                 "-c", str(C_DIR / "radam.c"), "-o", str(tmp_path / "radam.o")],
                [CXX, "-std=c++11", "-Wall", "-Werror", "-I", str(C_DIR), "-c", str(user), "-o",
                 str(tmp_path / "user.o")]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_c_header_is_self_describing():
    header = (C_DIR / "radam.h").read_text()
    for needle in ('#define RADAM_VERSION "', 'extern "C"', "int radam_step(", "int radam_step_f32("):
        assert needle in header
    source = (C_DIR / "radam.c").read_text()
    assert "malloc" not in source and "printf" not in source and "abort" not in source
    import re

    includes = set(re.findall(r"#include <([^>]+)>", source + header))
    assert includes <= {"math.h"}, includes


# --------------------------------------------------------------------------- #
# Step scalars in ulps against the spec's correctly rounded values
# --------------------------------------------------------------------------- #

_BETA2 = (0.5, 0.6, 0.7, 0.9, 0.99, 0.999, 0.9999, 0.99999, 1.0 - 1e-7)
_STEPS = (1, 2, 3, 4, 5, 6, 7, 10, 30, 100, 1000, 10_000, 100_000, 1_000_000)


def _ulps(got: float, want: float) -> float:
    return abs(got - want) / math.ulp(want) if want else abs(got) / math.ulp(0.0)


def _check_scalars(rows) -> None:
    """rows: (beta1, beta2, t, rho_t, rectified, r_t, bc1, bc2) from a port (threshold 4, '>')."""
    worst = {"rho_t": 0.0, "r_t": 0.0, "bc1": 0.0, "bc2": 0.0}
    for b1, b2, t, rho, rectified, r, bc1, bc2 in rows:
        s = radam_ref.schedule(t, beta1=b1, beta2=b2, threshold=4.0, comparison=">")
        assert bool(rectified) == s.rectified, (b2, t, rho, s.rho_t)
        # ρ_t within a few ulps of ρ_t (the cancellation-free formulas keep it so).
        worst["rho_t"] = max(worst["rho_t"], _ulps(rho, s.rho_t))
        worst["bc1"] = max(worst["bc1"], _ulps(bc1, s.bias_correction1))
        worst["bc2"] = max(worst["bc2"], _ulps(bc2, s.bias_correction2))
        if s.rectified:
            # r_t inherits ρ_t's relative error amplified by ρ_t/(ρ_t − 4) (and ρ∞'s).
            amplification = 1.0 + s.rho_t / (s.rho_t - 4.0)
            worst["r_t"] = max(worst["r_t"], _ulps(r, s.r_t) / amplification)
    assert worst["bc1"] <= 4 and worst["bc2"] <= 4, worst
    assert worst["rho_t"] <= 16, worst
    assert worst["r_t"] <= 16, worst


class _Schedule(ctypes.Structure):
    _fields_ = [("t", ctypes.c_long), ("rho_inf", ctypes.c_double), ("rho_t", ctypes.c_double),
                ("rectified", ctypes.c_int), ("r_t", ctypes.c_double), ("bias_correction1", ctypes.c_double),
                ("bias_correction2", ctypes.c_double)]


class _Config(ctypes.Structure):
    _fields_ = [(n, ctypes.c_double) for n in ("lr", "beta1", "beta2", "eps", "weight_decay", "threshold",
                                                "eps_root")] + \
               [(n, ctypes.c_int) for n in ("comparison", "eps_placement", "weight_decay_mode", "decay_form",
                                             "before_rectification", "nesterov", "maximize")]


@needs_cc
def test_c_step_scalars_within_ulps_of_the_spec(tmp_path):
    lib = ctypes.CDLL(str(build_c(tmp_path, shared=True)))
    config, out = _Config(), _Schedule()
    lib.radam_config_paper(ctypes.byref(config))
    rows = []
    for b2 in _BETA2:
        for b1 in (0.0, 0.9, 0.999):
            config.beta1, config.beta2 = b1, b2
            for t in _STEPS:
                assert lib.radam_schedule_at(ctypes.byref(config), ctypes.c_long(t), ctypes.byref(out)) == 0
                rows.append((b1, b2, t, out.rho_t, out.rectified, out.r_t, out.bias_correction1,
                             out.bias_correction2))
    _check_scalars(rows)
    # Errors are negative codes, never a crash.
    config.beta2 = 1.0
    assert lib.radam_schedule_at(ctypes.byref(config), ctypes.c_long(1), ctypes.byref(out)) == -2
    config.beta2 = 0.999
    assert lib.radam_schedule_at(ctypes.byref(config), ctypes.c_long(0), ctypes.byref(out)) == -3


def _node(script: str, payload) -> object:
    proc = subprocess.run([NODE, "--input-type=module", "-e", script], input=json.dumps(payload),
                          capture_output=True, text=True, cwd=JS_DIR, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


_JS_SCHEDULE = """
import { paperConfig, schedule } from "./radam.mjs";
import { formatHex } from "./hexfloat.mjs";
let text = ""; for await (const chunk of process.stdin) text += chunk;
const out = JSON.parse(text).map(([b1, b2, t]) => {
  const s = schedule(paperConfig({ betas: [b1, b2] }), t);
  return [s.rhoT, s.rectified, s.rT, s.biasCorrection1, s.biasCorrection2].map((x) =>
    typeof x === "boolean" ? x : formatHex(x));
});
process.stdout.write(JSON.stringify(out));
"""


@needs_node
def test_js_step_scalars_within_ulps_of_the_spec():
    cases = [(b1, b2, t) for b2 in _BETA2 for b1 in (0.0, 0.9, 0.999) for t in _STEPS]
    got = _node(_JS_SCHEDULE, cases)
    rows = [(b1, b2, t, float.fromhex(rho), rect, float.fromhex(r), float.fromhex(c1), float.fromhex(c2))
            for (b1, b2, t), (rho, rect, r, c1, c2) in zip(cases, got)]
    _check_scalars(rows)


_JS_HEX = """
import { formatHex, parseHex } from "./hexfloat.mjs";
let text = ""; for await (const chunk of process.stdin) text += chunk;
process.stdout.write(JSON.stringify(JSON.parse(text).map((s) => {
  const x = parseHex(s);
  return [formatHex(x), Object.is(x, -0)];
})));
"""


@needs_node
def test_js_hex_floats_round_trip_bit_exactly():
    rng = np.random.default_rng(5)
    values = [0.0, -0.0, 1.0, -2.5, 0.1, 5e-324, -5e-324, 2.2250738585072014e-308, 2.225073858507201e-308,
              1.7976931348623157e308, math.inf, -math.inf, math.nan]
    values += list(rng.standard_normal(200) * 10.0 ** rng.integers(-300, 300, 200))
    values += list(np.frombuffer(rng.integers(0, 2**63, 200, dtype=np.uint64).tobytes(), dtype=np.float64))
    encoded = ["nan" if math.isnan(v) else ("inf" if v == math.inf else "-inf" if v == -math.inf else v.hex())
               for v in map(float, values)]
    # Also the C99 %a spellings (no fraction, upper-case, implicit sign).
    extra = ["0x1p+0", "0X1.8P1", "0x0p+0", "-0x0p+0", "0x1.0p-1074"]
    got = _node(_JS_HEX, encoded + extra)
    for text, (back, negzero) in zip(encoded, got):
        assert back == text, (text, back)
    assert [g[0] for g in got[len(encoded):]] == [(1.0).hex(), (3.0).hex(), "0x0.0p+0", "-0x0.0p+0",
                                                   (5e-324).hex()]
    assert got[len(encoded) + 3][1] is True


# --------------------------------------------------------------------------- #
# NaN end to end, through the protocol
# --------------------------------------------------------------------------- #


def _nan_case(command: str) -> None:
    from radam_ref.conformance.adapters.exec_protocol import ExecTarget
    from radam_ref.conformance.scenario import Group

    target = ExecTarget(command)
    config = radam_ref.RAdamConfig(lr=0.1)
    p0 = np.array([1.0, -2.0, 0.5])
    grads = [np.array([0.5, math.nan, 1.0]), np.array([0.25, 1.0, -math.inf]), np.array([1.0, 2.0, 3.0])]
    session = target.open([Group([p0], config)], "float64")
    params, state = [p0.copy()], radam_ref.init([p0.copy()])
    for g in grads:
        session.step([[g]])
        params, state = radam_ref.step(params, [g], state, config)
        got = session.params()[0][0]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(params[0]))
        np.testing.assert_allclose(got[~np.isnan(got)], params[0][~np.isnan(params[0])], rtol=1e-14)
    assert np.isnan(got[1]) and got[2] == math.inf and np.isfinite(got[0])
    held = session.last_inputs()["grads"][0][1]
    np.testing.assert_array_equal(held, grads[-1])
    session.close()
    assert target.shutdown() == {"sessions": 1, "steps": 3, "groups": 1}
    assert target.channel.proc.returncode == 0


@needs_cc
def test_c_port_nan_and_inf_gradients_end_to_end(c_driver):
    _nan_case(str(c_driver))


@needs_node
def test_js_port_nan_and_inf_gradients_end_to_end():
    _nan_case(js_command()[len("exec:"):])


@needs_node
def test_js_library_checks_its_arguments():
    script = """
import { paperConfig, step } from "./radam.mjs";
const out = [];
const c = paperConfig();
for (const args of [[new Float32Array(2), new Float64Array(2)], [new Float64Array(2), new Float64Array(3)]]) {
  try { step(c, 1, args[0], args[1], new Float64Array(2), new Float64Array(2)); out.push("no error"); }
  catch (e) { out.push(e.constructor.name + ": " + e.message); }
}
try { paperConfig({ betas: [0.9, 1.0] }); out.push("no error"); } catch (e) { out.push(e.constructor.name + ": " + e.message); }
process.stdout.write(JSON.stringify(out));
"""
    got = _node(script, None)
    assert got[0].startswith("TypeError: params must be a Float64Array, got Float32Array")
    assert got[1].startswith("RangeError: grad has 3 elements, params has 2")
    assert got[2].startswith("RangeError: betas[1] must be in [0, 1), got 1")


def test_js_library_imports_nothing():
    source = (JS_DIR / "radam.mjs").read_text()
    assert "import " not in source.replace("//     import", "") and "require(" not in source


def test_readme_says_how_to_install_the_toolchains():
    readme = (ROOT / "README.md").read_text()
    assert "ports/" in readme and "node" in readme.lower() and "cc" in readme


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
