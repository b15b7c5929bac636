"""Hostile ports and hostile input: the ``exec:`` client, and the C and JS drivers.

The client (:mod:`radam_ref.conformance.adapters.exec_protocol`) must turn every
misbehaviour of a port into a one-line :class:`PortFailure` (the verdict
"error") or a failed check, within its timeouts: never a traceback, never a
hang, never unbounded memory.  A small port written here answers ``hello``
properly and then misbehaves in one way per test.  Probes that could hang the
test process run in a child process with a timeout.

The drivers must answer any line, however malformed, with a JSON-RPC error and
keep serving: the C driver is built with AddressSanitizer and
UndefinedBehaviorSanitizer where the compiler supports them and fed a fixed
list of malformed requests plus a short seeded fuzz; the C library's error
returns are checked by a small C program under the same sanitizers.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import radam_ref
from radam_ref.conformance.adapters import exec_protocol
from radam_ref.conformance.adapters.base import TargetError
from radam_ref.conformance.adapters.exec_protocol import ExecTarget, PortFailure, decode_array
from radam_ref.conformance.adapters.registry import TargetUnavailable, resolve_target
from radam_ref.conformance.scenario import Group, config_to_json

ROOT = Path(__file__).resolve().parents[1]
C_DIR = ROOT / "ports" / "c"
CC = shutil.which("cc")
NODE = shutil.which("node")

HOSTILE_PORT = textwrap.dedent('''
    """Answers hello, then misbehaves as argv[1] says."""
    import json, os, sys, time
    mode = sys.argv[1]
    HELLO = {"protocol": 1, "name": "h", "version": "0", "capabilities": {"dtypes": ["float64"]}}

    def send(text):
        sys.stdout.write(text)
        sys.stdout.flush()

    def step_reply(rid, array):
        return json.dumps({"id": rid, "result": {"params": [[array]]}}) + "\\n"

    first = True
    for line in sys.stdin:
        rid = json.loads(line)["id"]
        if first:
            first = False
            if mode == "protocol-2":
                send(json.dumps({"id": rid, "result": {**HELLO, "protocol": 2}}) + "\\n"); continue
            if mode == "bogus-profile":
                caps = {**HELLO["capabilities"], "profile": "bogus"}
                send(json.dumps({"id": rid, "result": {**HELLO, "capabilities": caps}}) + "\\n"); continue
            if mode == "deep-json":
                send('{"id":%d,"result":' % rid + "[" * 100000 + "]" * 100000 + "}\\n"); continue
            if mode == "stderr-flood":  # 16 MB of log lines before answering
                for _ in range(16000):
                    sys.stderr.write("x" * 1000 + "\\n")
            if mode == "stderr-no-newline":  # 5 MB of one unfinished log line, then exit
                sys.stderr.write("y" * 5_000_000)
                sys.stderr.flush()
                sys.exit(3)
            if mode == "no-newline":
                while True:
                    send("a" * 65536)
            if mode == "big-reply":  # 10 MB, one line
                send('{"id":%d,"result":{"pad":"%s"}}\\n' % (rid, "z" * 10_000_000)); continue
            if mode == "close-stdout":
                os.close(1)
                time.sleep(3600)
            if mode == "fork-child":
                pid = os.fork()
                if pid == 0:
                    time.sleep(3600)
                    os._exit(0)
                with open(sys.argv[2], "w") as fh:
                    fh.write(str(pid))
                os._exit(0)
            send(json.dumps({"id": rid, "result": HELLO}) + "\\n")
            if mode == "stop-reading":
                time.sleep(3600)
            continue
        request = json.loads(line)
        if request["method"] == "open":
            send(json.dumps({"id": rid, "result": {"session": 0}}) + "\\n"); continue
        if request["method"] == "step":
            array = {"shape": [2], "data": ["0x1p+0", "0x1p+0"]}
            if mode == "huge-exponent":
                array["data"][0] = "0x1p+99999"
            if mode == "pair-in-real":
                array["data"][0] = ["0x1p+0", "0x1p+0"]
            if mode == "wrong-shape":
                array["shape"] = [1, 2]
            send(step_reply(rid, array)); continue
        send(json.dumps({"id": rid, "result": {}}) + "\\n")
''')


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "hostile_port.py"
    path.write_text(HOSTILE_PORT)
    return path


def _target(hostile: Path, mode: str, *extra, timeout: float = 10.0) -> ExecTarget:
    return ExecTarget([sys.executable, str(hostile), mode, *extra], timeout=timeout)


def _step(target: ExecTarget, n: int = 2):
    session = target.open([Group([np.ones(n)], radam_ref.RAdamConfig())], "float64")
    session.step([[np.ones(n)]])
    return session


# --------------------------------------------------------------------------- #
# The client: every misbehaviour is a one-line PortFailure, in bounded time
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("mode, words", [
    ("huge-exponent", "malformed array (hex float '0x1p+99999' is too large for float64)"),
    ("pair-in-real", "malformed array (expected a hex float string, got list"),
])
def test_a_malformed_array_in_a_reply_is_a_port_failure(hostile, mode, words):
    target = _target(hostile, mode)
    with pytest.raises(PortFailure) as info:
        _step(target)
    assert words in str(info.value)


def test_an_array_of_the_wrong_shape_fails_the_check_naming_both_shapes(hostile):
    target = _target(hostile, "wrong-shape")
    with pytest.raises(TargetError, match=r"shape \[1, 2\] for parameter 0 of group 0, whose shape is \[2\]"):
        _step(target)


def test_decode_array_raises_only_value_error():
    bad = [
        {"shape": [1], "data": ["0x1p+2000"]},
        {"shape": [1], "data": [["0x1p+0", "0x1p+0"]]},
        {"shape": [1], "data": [1.5]},
        {"shape": [10 ** 30], "data": []},
        {"shape": [True], "data": ["0x1p+0"]},
        {"shape": [1], "data": ["0x1p+0"], "complex": True},
        {"shape": [1], "data": [["0x1p+0"]], "complex": True},
    ]
    for array in bad:
        with pytest.raises(ValueError):
            decode_array(array)


@pytest.mark.parametrize("mode, words", [
    ("deep-json", "with JSON nested deeper than 64 levels"),
    ("protocol-2", "invalid result ($.result.protocol: expected 1, got 2)"),
    ("bogus-profile", "claims the profile 'bogus' in hello"),
    ("close-stdout", "closed its stdout instead of answering hello (id 1)"),
])
def test_a_bad_hello_is_a_one_line_usage_error(hostile, mode, words):
    with pytest.raises(TargetUnavailable) as info:
        resolve_target(f"exec:{sys.executable} {hostile} {mode}")
    assert words in str(info.value) and "\n" not in str(info.value)


def test_a_port_flooding_stderr_is_not_throttled(hostile):
    # Drained line by line with one-byte reads, 16 MB of stderr took longer than the timeout.
    target = _target(hostile, "stderr-flood", timeout=10.0)
    assert target.port_name == "h"
    target.channel.kill()


def test_stderr_quoted_in_a_failure_is_short(hostile):
    with pytest.raises(PortFailure) as info:
        _target(hostile, "stderr-no-newline", timeout=10.0)
    assert "exited with status 3 instead of answering hello" in str(info.value)
    assert "its stderr ends with: yyy" in str(info.value)
    assert len(str(info.value)) < 2000


def test_a_line_that_never_ends_is_cut_at_the_limit(hostile, monkeypatch):
    monkeypatch.setattr(exec_protocol, "MAX_LINE_BYTES", 1 << 20)
    start = time.monotonic()
    with pytest.raises(PortFailure, match="wrote more than 1 MiB without a newline"):
        _target(hostile, "no-newline", timeout=30.0)
    assert time.monotonic() - start < 20


def test_a_10_mb_reply_is_read(hostile):
    with pytest.raises(TargetUnavailable, match="invalid result"):  # read whole, then found wanting
        resolve_target(f"exec:{sys.executable} {hostile} big-reply", {"timeout": 20})


def test_a_port_that_exits_leaving_a_child_on_its_stdout_is_reported_and_the_child_killed(hostile, tmp_path):
    pid_file = tmp_path / "child.pid"
    start = time.monotonic()
    with pytest.raises(PortFailure, match="exited with status 0 instead of answering hello .* still holds its stdout"):
        _target(hostile, "fork-child", str(pid_file), timeout=20.0)
    assert time.monotonic() - start < 10  # not the 20 s timeout
    child = int(pid_file.read_text())
    for _ in range(50):  # killed with its process group
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(child, 9)
        pytest.fail("the port's child outlived it")


def test_a_port_that_stops_reading_its_stdin_cannot_stall_the_suite(hostile, tmp_path):
    # A request larger than a pipe buffer to a port that never reads: the write
    # used to block forever.  Run in a child process, so a regression fails, not hangs.
    script = textwrap.dedent(f"""
        import sys, numpy as np, radam_ref
        from radam_ref.conformance.adapters.exec_protocol import ExecTarget, PortFailure
        from radam_ref.conformance.scenario import Group
        target = ExecTarget([sys.executable, {str(hostile)!r}, "stop-reading"], timeout=2.0)
        try:
            target.open([Group([np.ones(100000)], radam_ref.RAdamConfig())], "float64")
        except PortFailure as exc:
            print(exc)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "did not read open (id 2) within 2 s (killed)" in proc.stdout, proc.stdout + proc.stderr


def test_the_command_is_never_run_by_a_shell(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(TargetUnavailable, match="could not be started"):
        resolve_target(f"exec:{sys.executable} -c pass ; touch {marker}")
    with pytest.raises(TargetUnavailable, match="could not be started"):
        resolve_target(f"exec:{sys.executable} -c pass $(touch {marker}) && touch {marker}")
    assert not marker.exists()
    with pytest.raises(TargetUnavailable, match="empty command"):
        resolve_target("exec:   ")


# --------------------------------------------------------------------------- #
# The drivers: any line gets a JSON reply, and the driver keeps serving
# --------------------------------------------------------------------------- #

_CONFIG = config_to_json(radam_ref.RAdamConfig())
_ARRAY = {"shape": [2], "data": ["0x1p+0", "0x1p+0"]}
_HELLO = {"id": 1, "method": "hello", "params": {"protocol": 1}}
_OPEN = {"id": 2, "method": "open", "params": {"dtype": "float64", "groups": [{"config": _CONFIG,
                                                                               "params": [_ARRAY]}]}}


def _open_with(array) -> dict:
    return {"id": 9, "method": "open", "params": {"dtype": "float64", "groups": [{"config": _CONFIG,
                                                                                  "params": [array]}]}}


#: Malformed requests, each once crashed, hung or misled a driver (or nearly did).
MALFORMED = [
    {"id": 1e200, "method": "nope", "params": {}},              # C: %.0f of the id overflowed a buffer
    {"id": -1e300, "method": "hello", "params": {"protocol": 1}},
    {"id": 2 ** 63, "method": "nope", "params": {}},
    {"id": 1.5, "method": "nope", "params": {}},
    _open_with({"shape": [2 ** 40, 2 ** 40], "data": []}),      # C: the product overflowed
    _open_with({"shape": [1e30], "data": []}),                  # C: undefined float-to-long cast
    _open_with({"shape": [-1, -1], "data": ["0x1p+0"]}),        # JS: accepted, size (-1)(-1) = 1
    _open_with({"shape": ["1"], "data": ["0x1p+0"]}),           # JS: accepted
    _open_with({"shape": [1.5], "data": ["0x1p+0"]}),
    _open_with({"shape": [2], "data": ["0x1p+99999999999999999999", "0x1p+0"]}),  # JS: hung; C: read inf
    _open_with({"shape": [2], "data": ["0x" + "1" * 5000 + "p+0", "0x1p+0"]}),    # beyond float64: refused
    {"id": 10, "method": "step", "params": {"session": 1e30, "grads": [[_ARRAY]]}},
    {"id": 11, "method": "step", "params": {"session": -1, "grads": [[_ARRAY]]}},
    {"id": 12, "method": "step", "params": {"session": 0, "grads": [[{"shape": [2], "data": [1, 2]}]]}},
    {"id": 13, "method": "load_state", "params": {"session": 0, "state": {"groups": [[
        {"count": 1e300, "m": _ARRAY, "v": _ARRAY}]]}}},        # C: undefined cast
    {"id": 14, "method": "load_state", "params": {"session": 0, "state": {"groups": [[None]]}}},
    {"id": 15, "method": "x" * 100000, "params": {}},
]
#: Odd but valid: any reply will do, promptly.
ODD = [_open_with({"shape": [2], "data": ["0x1p-99999999999999999999", "0x1p+0"]}),  # JS: hung; rounds to 0
       _open_with({"shape": [0, 2 ** 20], "data": []})]
#: Lines that are not JSON requests at all (bytes).
GARBAGE = [b"[" * 100000 + b"]" * 100000, b'{"id": 3, "method": "\xff\xfe", "params": {}}', b"\x00\x01\x02",
           b'{"id": 4, "method": "hello"', b"", b"null", b"42", b'"\\u12"']


_SANITIZERS = ["-g", "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]


def _sanitizers_work(tmp_path) -> bool:
    """Whether ``cc`` builds and runs a program with ASan and UBSan here."""
    src, exe = tmp_path / "empty.c", tmp_path / "empty-san"
    src.write_text("int main(void) { return 0; }\n")
    if subprocess.run([CC, *_SANITIZERS, str(src), "-o", str(exe)], capture_output=True).returncode != 0:
        return False
    return subprocess.run([str(exe)], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def sanitized_drivers(tmp_path_factory) -> list:
    """The drivers, the C one built with ASan and UBSan where they work (built once)."""
    return _drivers(tmp_path_factory.mktemp("drivers"), sanitize=True)


def _drivers(tmp_path, sanitize: bool) -> list:
    commands = []
    if NODE:
        commands.append([NODE, str(ROOT / "ports" / "js" / "driver.mjs")])
    if CC:
        out = tmp_path / "radam-driver-san"
        flags = _SANITIZERS if sanitize and _sanitizers_work(tmp_path) else []
        subprocess.run([CC, "-std=c99", *flags, str(C_DIR / "radam.c"), str(C_DIR / "driver.c"), "-o", str(out),
                        "-lm"], check=True, capture_output=True)
        commands.append([str(out)])
    if not commands:
        pytest.skip("neither `cc` nor `node` on PATH (see README)")
    return commands


def _feed(argv, lines: list, timeout: float = 60) -> list:
    """Send the lines; return the replies, checking the driver neither crashed nor hung."""
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0", "UBSAN_OPTIONS": "print_stacktrace=1"}
    proc = subprocess.run(argv, input=b"\n".join(lines) + b"\n", capture_output=True, timeout=timeout, env=env)
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0 and "Sanitizer" not in err and "runtime error" not in err, (argv, err[-2000:])
    replies = [json.loads(line.decode("utf-8")) for line in proc.stdout.splitlines()]  # valid UTF-8 JSON
    for reply in replies:
        assert isinstance(reply, dict) and ("result" in reply) != ("error" in reply), reply
        assert reply["id"] is None or isinstance(reply["id"], int), reply
    return replies


def test_drivers_answer_malformed_requests_with_errors_and_keep_serving(sanitized_drivers):
    lines = [json.dumps(_HELLO).encode(), json.dumps(_OPEN).encode()]
    lines += [json.dumps(r).encode() for r in MALFORMED + ODD] + GARBAGE
    lines.append(json.dumps({"id": 99, "method": "end", "params": {"session": 0}}).encode())
    for argv in sanitized_drivers:
        replies = _feed(argv, lines)
        assert len(replies) == len(lines), argv
        assert replies[1].get("result") == {"session": 0}, argv
        for request, reply in zip(MALFORMED, replies[2:]):
            assert "error" in reply, (argv, request, reply)
            assert len(reply["error"]["message"]) < 300, argv  # a 100 kB method name is not echoed whole
        assert replies[-1] == {"id": 99, "result": {"steps": 0, "groups": 1}}, argv


def test_drivers_survive_a_seeded_fuzz(sanitized_drivers):
    """Mutated valid sessions, about 1.5 s per driver (a regression shows as a crash or a sanitizer report)."""
    valid = [_HELLO, _OPEN,
             {"id": 3, "method": "step", "params": {"session": 0, "grads": [[_ARRAY]]}},
             {"id": 4, "method": "save_state", "params": {"session": 0}},
             {"id": 5, "method": "load_state", "params": {"session": 0, "state": {"groups": [[
                 {"count": 1, "m": _ARRAY, "v": _ARRAY}]]}}},
             {"id": 6, "method": "inputs", "params": {"session": 0}},
             {"id": 7, "method": "add_group", "params": {"session": 0, "group": {"config": _CONFIG,
                                                                                "params": [_ARRAY]}}},
             {"id": 8, "method": "end", "params": {"session": 0}}]
    weird = [None, True, 0, -1, 1e308, 2 ** 70, 0.5, "", "0x", "0x1p", "nan", "0x1p+99999", [], {}, [[[]]],
             {"shape": [2 ** 40, 2 ** 40], "data": []}, {"shape": [-1], "data": []}]
    rng = random.Random(20201)

    def mutate(obj):
        if isinstance(obj, dict):
            obj = dict(obj)
            for key in list(obj):
                if rng.random() < 0.15:
                    obj[key] = rng.choice(weird)
                elif rng.random() < 0.3:
                    obj[key] = mutate(obj[key])
            return obj
        if isinstance(obj, list):
            return [rng.choice(weird) if rng.random() < 0.1 else mutate(x) for x in obj]
        return obj

    def scramble(data: bytes) -> bytes:
        b = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(b))
            b[i] = rng.choice(b'{}[]",:\\0-.eExp \xff')
        return bytes(b)

    for argv in sanitized_drivers:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            lines = []
            for request in valid:
                text = json.dumps(request).encode()
                r = rng.random()
                lines.append(text if r < 0.4 else json.dumps(mutate(request)).encode() if r < 0.8 else scramble(text))
            replies = _feed(argv, [line.replace(b"\n", b" ") for line in lines])
            assert len(replies) == len(lines), argv


@pytest.mark.skipif(CC is None, reason="no C compiler `cc` on PATH (install gcc or clang; see README)")
def test_c_library_error_returns(tmp_path):
    """NULL pointers, n < 0, bad hyperparameters and step numbers return the
    documented codes and write nothing; t = LONG_MAX with Nesterov (which reads
    t + 1) is no signed overflow."""
    program = tmp_path / "api.c"
    program.write_text(textwrap.dedent(r"""
        #include "radam.h"
        #include <limits.h>
        #include <math.h>
        #include <stdio.h>
        static int fails;
        #define CHECK(c) do { if (!(c)) { printf("FAIL line %d: %s\n", __LINE__, #c); fails++; } } while (0)
        int main(void)
        {
            radam_config c, b;
            radam_schedule s;
            double th[2] = {1.0, 2.0}, g[2] = {0.5, -0.5}, m[2] = {0, 0}, v[2] = {0, 0};
            float thf[2] = {1.0f, 2.0f}, gf[2] = {0.5f, -0.5f}, mf[2] = {0, 0}, vf[2] = {0, 0};
            radam_config_paper(NULL);
            radam_config_paper(&c);
            CHECK(radam_config_check(NULL) == RADAM_EINVAL);
            CHECK(radam_step(2, NULL, 1, th, g, m, v) == RADAM_EINVAL);
            CHECK(radam_step(2, &c, 1, NULL, g, m, v) == RADAM_EINVAL);
            CHECK(radam_step(2, &c, 1, th, NULL, m, v) == RADAM_EINVAL);
            CHECK(radam_step(2, &c, 1, th, g, NULL, v) == RADAM_EINVAL);
            CHECK(radam_step(2, &c, 1, th, g, m, NULL) == RADAM_EINVAL);
            CHECK(radam_step(-1, &c, 1, th, g, m, v) == RADAM_EINVAL);
            CHECK(radam_step(0, &c, 1, NULL, NULL, NULL, NULL) == RADAM_OK);
            CHECK(radam_step_f32(2, &c, 1, NULL, gf, mf, vf) == RADAM_EINVAL);
            CHECK(radam_step(2, &c, 0, th, g, m, v) == RADAM_ESTEP);
            CHECK(radam_step(2, &c, LONG_MIN, th, g, m, v) == RADAM_ESTEP);
            CHECK(radam_schedule_at(NULL, 1, &s) == RADAM_EINVAL);
            CHECK(radam_schedule_at(&c, 1, NULL) == RADAM_EINVAL);
            b = c; b.lr = NAN; CHECK(radam_step(2, &b, 1, th, g, m, v) == RADAM_ECONFIG);
            b = c; b.lr = -1.0; CHECK(radam_config_check(&b) == RADAM_ECONFIG);
            b = c; b.eps = INFINITY; CHECK(radam_config_check(&b) == RADAM_ECONFIG);
            b = c; b.beta1 = 1.0; CHECK(radam_config_check(&b) == RADAM_ECONFIG);
            b = c; b.beta2 = NAN; CHECK(radam_config_check(&b) == RADAM_ECONFIG);
            b = c; b.threshold = 3.9; CHECK(radam_config_check(&b) == RADAM_ECONFIG);
            b = c; b.comparison = 7; CHECK(radam_config_check(&b) == RADAM_ECONFIG);
            b = c; b.weight_decay_mode = -1; CHECK(radam_config_check(&b) == RADAM_ECONFIG);
            b = c; b.nesterov = 2; CHECK(radam_config_check(&b) == RADAM_ECONFIG);
            CHECK(th[0] == 1.0 && th[1] == 2.0 && m[0] == 0.0 && v[1] == 0.0);
            b = c; b.nesterov = 1;
            CHECK(radam_step(2, &b, LONG_MAX, th, g, m, v) == RADAM_OK && isfinite(th[0]));
            CHECK(radam_step_f32(2, &b, LONG_MAX, thf, gf, mf, vf) == RADAM_OK && isfinite(thf[0]));
            CHECK(radam_schedule_at(&c, LONG_MAX, &s) == RADAM_OK && s.rectified && s.bias_correction2 == 1.0);
            puts(fails ? "FAILED" : "ok");
            return fails != 0;
        }
    """))
    exe = tmp_path / "api"
    base = [CC, "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", f"-I{C_DIR}", str(C_DIR / "radam.c"),
            str(program), "-o", str(exe), "-lm"]
    subprocess.run(base + (_SANITIZERS if _sanitizers_work(tmp_path) else []), check=True, capture_output=True)
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


@pytest.mark.skipif(NODE is None, reason="no `node` on PATH (install Node.js >= 18; see README)")
def test_js_hex_reader_is_bounded_and_the_library_checks_plain_configs():
    script = textwrap.dedent(f"""
        import {{ parseHex }} from {json.dumps((ROOT / "ports" / "js" / "hexfloat.mjs").as_uri())};
        import {{ paperConfig, step }} from {json.dumps((ROOT / "ports" / "js" / "radam.mjs").as_uri())};
        const show = (x) => (Object.is(x, -0) ? "-0" : String(x));
        const out = [parseHex("0x1p+99999999999999999999"), parseHex("-0x1p-99999999999999999999"),
                     parseHex("0x" + "1".repeat(40) + "p+0"), parseHex("0x1.8p-1074"), parseHex("0x0.0p+99999"),
                     parseHex("0x1.fffffffffffffp+1023"), parseHex("0x1p+1024")].map(show);
        const p = new Float64Array(1), g = new Float64Array(1), m = new Float64Array(1), v = new Float64Array(1);
        try {{ step({{ ...paperConfig(), lr: -1 }}, 1, p, g, m, v); out.push("accepted"); }}
        catch (e) {{ out.push(e.constructor.name + ": " + e.message); }}
        step({{ ...paperConfig(), betas: [0.9, 0.999] }}, 1, p, g, m, v);  // a plain, valid config steps
        console.log(JSON.stringify(out));
    """)
    proc = subprocess.run([NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == ["null", "-0", "null", "1e-323", "0", "1.7976931348623157e+308", "null",
                                       "RangeError: lr must be a finite number >= 0, got -1"]


def test_drivers_split_lines_at_newline_only_and_refuse_nul_bytes(tmp_path):
    lines = [json.dumps(_HELLO).encode(),
             b'{"id": 2,\r"method": "nope",\r"params": {}}',   # JSON whitespace: one request (JS answered twice)
             b'{"id": 3, "method": "nope", "params": {}}\r',   # CRLF line ends are fine
             b'{"id": 4, "method": "hello", "params": {"protocol": 1}}\x00junk']  # C: read up to the NUL
    for argv in _drivers(tmp_path, sanitize=False):
        replies = _feed(argv, lines)
        assert [(r["id"], r.get("error", {}).get("code")) for r in replies] == [
            (1, None), (2, -32601), (3, -32601), (None, -32700)], argv
