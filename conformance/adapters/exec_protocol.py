"""Adapter for a port in any language: ``exec:COMMAND`` speaks the process protocol.

``radam-ref conformance 'exec:node ports/js/driver.mjs'`` starts the command once
per target and drives it over stdin/stdout with protocol version 1
(``schemas/radam_protocol_v1.json``; walkthrough in ``docs/porting.md``): one
compact JSON object per line, an integer ``id`` per request and exactly one
reply echoing it, ``result`` or ``error``.  Floats travel as ``float.hex``
strings (``"nan"``, ``"inf"``, ``"-inf"``), so every value crosses bit-exactly,
as in the golden vectors.

=============  ===============================================  ==========================
request        params                                           result
=============  ===============================================  ==========================
hello          protocol: 1                                      protocol, name, version,
                                                                capabilities
open           dtype, groups: [{config, params: [array]}]       session
step           session, grads: [[array | null]] per group       params: [[array]] after
add_group      session, group                                   {}
save_state     session                                          state (any JSON)
load_state     session, state                                   {}
inputs         session                                          grads: as the port holds
                                                                them after the last step
end            session                                          steps, groups (of it)
close          {}                                               sessions, steps, groups;
                                                                then the port exits 0
=============  ===============================================  ==========================

Every reply is validated against the schema, its id against the request's, and
the counts of ``end`` and ``close`` against what was sent (a truncated run shows,
like TAP's plan).  Error replies map to the suite's vocabulary: -32601 (method
not found) and 1 (option value, dtype or feature not supported) become
:class:`~.base.NotSupported`; any other code is the port failing what it claims
to support (:class:`~.base.TargetError`, a failed check).  A port that breaks
the protocol — writes a line that is not JSON or not a valid reply, answers out
of order, exits, is killed, or does not answer within the per-request timeout —
raises :class:`PortFailure`, which the runner reports as the verdict "error",
never as a conformance failure.  So does one that stops reading its stdin, writes
a line longer than :data:`MAX_LINE_BYTES` or nested deeper than :data:`MAX_DEPTH`,
or exits leaving a child on its stdout; the command runs without a shell, in its
own process group, killed whole when it fails.

One child process serves the whole target run: each scenario opens a session
and ends it; sessions a check drops without closing are ended before the next
request.  One step is one message with the gradients of every parameter.
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
import selectors
import shlex
import signal
import subprocess
import threading
import time
import weakref
from importlib import resources

import numpy as np

from radam_ref import RAdamConfig
from radam_ref._profiles import PROFILES

from ..scenario import config_to_json
from ..schema import SchemaError, validate
from .base import NotSupported, Session, Target, TargetError

__all__ = ["ExecTarget", "PortFailure", "PROTOCOL_VERSION", "SCHEMA_NAME", "protocol_schema",
           "encode_array", "decode_array"]

PROTOCOL_VERSION = 1
SCHEMA_NAME = "radam_protocol_v1.json"

#: Error codes of the protocol (JSON-RPC's, and the protocol's own outside -32768..-32000).
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, NOT_INITIALIZED = (
    -32700, -32600, -32601, -32602, -32002)
UNSUPPORTED, STEP_FAILED = 1, 2

_OPTIONS = ("threshold", "comparison", "eps_placement", "eps_root", "decay_form",
            "before_rectification", "nesterov", "maximize")
_HEX = re.compile(r"^(-?(0[xX][0-9a-fA-F]+(\.[0-9a-fA-F]*)?[pP][+-]?[0-9]+|inf)|nan)$")
_TAIL_LINES = 20
#: Longest stderr line kept for messages (characters; the rest is cut).
_TAIL_WIDTH = 240
#: Longest reply line accepted (bytes): a port that writes more without a
#: newline is broken, not slow (the suite's largest replies are a few MB).
MAX_LINE_BYTES = 64 << 20
#: Deepest nesting accepted in a reply (the protocol needs 6; state blobs are the port's own).
MAX_DEPTH = 64


class PortFailure(Exception):
    """The port broke the protocol (crash, hang, garbage, out-of-order reply).

    Not a :class:`~.base.TargetError`: it says nothing about the port's
    arithmetic, so it is reported as the verdict "error", not as a failed check.
    ``target_fault`` tells a runner that the target, not the suite, broke.
    """

    target_fault = True


_SCHEMA: dict | None = None


def protocol_schema() -> dict:
    """The protocol's JSON Schema (``schemas/radam_protocol_v1.json``)."""
    global _SCHEMA
    if _SCHEMA is None:
        path = resources.files("radam_ref.conformance") / "schemas" / SCHEMA_NAME
        _SCHEMA = json.loads(path.read_text(encoding="utf-8"))
    return _SCHEMA


# --------------------------------------------------------------------------- #
# Values
# --------------------------------------------------------------------------- #


def _hex(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x.hex()


def encode_array(a) -> dict:
    """A NumPy array as the protocol's ``{"shape", "data"}`` (complex: [re, im] pairs)."""
    a = np.asarray(a)
    if np.iscomplexobj(a):
        data = [[_hex(float(z.real)), _hex(float(z.imag))] for z in a.reshape(-1)]
        return {"shape": list(a.shape), "data": data, "complex": True}
    return {"shape": list(a.shape), "data": [_hex(float(x)) for x in a.reshape(-1).tolist()]}


def _unhex(s) -> float:
    if not isinstance(s, str):
        raise ValueError(f"expected a hex float string, got {type(s).__name__} {s!r:.40}")
    if s in ("nan", "inf", "-inf"):
        return float(s)
    try:
        return float.fromhex(s)
    except OverflowError:
        raise ValueError(f"hex float {s!r:.40} is too large for float64") from None


def decode_array(d: dict) -> np.ndarray:
    """Inverse of :func:`encode_array`.

    Raises ValueError, never anything else, on any malformed input: a size/shape
    mismatch, a value that is not a hex string (or, for a complex array, not a
    pair of them), a hex float beyond float64's range.
    """
    shape = tuple(d["shape"])
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise ValueError(f"shape {list(shape)!r:.80} is not a list of non-negative integers")
    size = math.prod(shape)
    data = d["data"]
    if len(data) != size:
        raise ValueError(f"array of shape {list(shape)!r:.80} has {len(data)} elements, expected {size}")
    if d.get("complex"):
        if not all(isinstance(z, list) and len(z) == 2 for z in data):
            raise ValueError("a complex array's data must be [re, im] pairs")
        values = np.array([_unhex(r) + 1j * _unhex(i) for r, i in data], dtype=np.complex128)
    else:
        values = np.array([_unhex(x) for x in data], dtype=np.float64)
    return values.reshape(shape)


def _depth_exceeds(value, limit: int) -> bool:
    """Whether ``value`` (parsed JSON) nests deeper than ``limit`` (iteratively)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def _group_json(group) -> dict:
    return {"config": config_to_json(group.config), "params": [encode_array(p) for p in group.params]}


# --------------------------------------------------------------------------- #
# The child process
# --------------------------------------------------------------------------- #


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


class _Channel:
    """One child process and its JSON-lines conversation (one request in flight).

    Nothing here can block past a deadline: requests are written without
    blocking (a port that stops reading its stdin cannot stall the suite),
    replies are read with ``select``, stderr is drained in whole chunks by a
    thread (a port flooding it is never throttled), a reply line is capped at
    :data:`MAX_LINE_BYTES`, and the port runs in its own process group, so
    that killing it also kills any child it started.  The command is run
    directly, never through a shell.
    """

    def __init__(self, argv: list, *, cwd: str | None, timeout: float, label: str) -> None:
        self.label, self.timeout = label, timeout
        self.next_id = 0
        self.failure: str | None = None
        self.stderr_tail: collections.deque = collections.deque(maxlen=_TAIL_LINES)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=cwd, bufsize=0,
                                     start_new_session=os.name == "posix")
        self._buffer = b""
        self._scanned = 0
        os.set_blocking(self.proc.stdin.fileno(), False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()

    def _drain_stderr(self) -> None:
        fd, partial = self.proc.stderr.fileno(), b""
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:  # closed by kill()
                break
            if not chunk:
                break
            *lines, partial = (partial + chunk).split(b"\n")
            for raw in lines:
                self.stderr_tail.append(self._clip(raw))
            partial = partial[:_TAIL_WIDTH + 1]  # a line without end is kept short
        if partial:
            self.stderr_tail.append(self._clip(partial))

    @staticmethod
    def _clip(raw: bytes) -> str:
        text = raw[:_TAIL_WIDTH + 1].decode("utf-8", "replace").rstrip("\r")
        return text if len(text) <= _TAIL_WIDTH else text[:_TAIL_WIDTH] + "…"

    def _tail(self) -> str:
        self._stderr_thread.join(timeout=0.2)
        if not self.stderr_tail:
            return ""
        return "; its stderr ends with: " + " | ".join(list(self.stderr_tail)[-5:])

    def _kill_group(self) -> None:
        """Kill the port and everything in its process group."""
        if os.name == "posix":
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass

    def fail(self, what: str) -> None:
        """Kill the port, remember why, and raise :class:`PortFailure`; every
        later request raises the same failure, from the same place (so that
        Hypothesis, replaying a case, sees one consistent error)."""
        if self.failure is None:
            self._kill_group()
            self.failure = f"port {self.label!r} {what}{self._tail()}"
        self.raise_failure()

    def raise_failure(self) -> None:
        raise PortFailure(self.failure)

    def _write(self, data: bytes, deadline: float, doing: str) -> None:
        fd, view = self.proc.stdin.fileno(), memoryview(data)
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_WRITE)
            while view:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.fail(f"did not read {doing} within {self.timeout:g} s (killed)")
                if not sel.select(timeout=min(left, 0.5)):
                    if self.proc.poll() is not None:
                        self.fail(f"{_describe_exit(self.proc.returncode)} before reading {doing}")
                    continue
                try:
                    view = view[os.write(fd, view):]
                except BlockingIOError:
                    continue
                except OSError:  # BrokenPipeError and the like: the port is gone
                    code = self.proc.poll()
                    ended = _describe_exit(code) if code is not None else "closed its stdin"
                    self.fail(f"{ended} before reading {doing}")

    def _read_line(self, deadline: float, doing: str) -> bytes:
        exited_at = None
        while True:
            newline = self._buffer.find(b"\n", self._scanned)
            if newline >= 0:
                break
            self._scanned = len(self._buffer)
            if self._scanned > MAX_LINE_BYTES:
                self.fail(f"wrote more than {MAX_LINE_BYTES >> 20} MiB without a newline instead of answering "
                          f"{doing}: {self._buffer[:80]!r}")
            left = deadline - time.monotonic()
            if left <= 0:
                self.fail(f"did not answer {doing} within {self.timeout:g} s (killed)")
            if not self._selector.select(timeout=min(left, 0.5)):
                code = self.proc.poll()
                if code is not None:
                    # The port exited but something it started still holds its stdout.
                    exited_at = exited_at or time.monotonic()
                    if time.monotonic() - exited_at > 1.0:
                        self.fail(f"{_describe_exit(code)} instead of answering {doing} (a process it "
                                  f"started still holds its stdout; killed)")
                continue
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            if not chunk:
                try:
                    code = self.proc.wait(timeout=2)
                    ended = _describe_exit(code)
                except subprocess.TimeoutExpired:
                    ended = "closed its stdout"
                partial = f" after writing {self._buffer[:80]!r}" if self._buffer else ""
                self.fail(f"{ended} instead of answering {doing}{partial}")
            self._buffer += chunk
        line, self._buffer = self._buffer[:newline], self._buffer[newline + 1:]
        self._scanned = 0
        return line

    def request(self, method: str, params: dict, timeout: float | None = None) -> dict:
        """Send one request; return the validated reply (``result`` or ``error`` inside)."""
        if self.failure is None:
            try:
                return self._exchange(method, params, timeout)
            except PortFailure:
                pass
        # Raised here, outside any except block, so it carries no __context__.
        self.raise_failure()

    def _exchange(self, method: str, params: dict, timeout: float | None) -> dict:
        self.next_id += 1
        rid = self.next_id
        doing = f"{method} (id {rid})"
        message = json.dumps({"id": rid, "method": method, "params": params}, separators=(",", ":"))
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        self._write(message.encode("utf-8") + b"\n", deadline, doing)
        line = self._read_line(deadline, doing)
        try:
            reply = json.loads(line.decode("utf-8"))
            too_deep = _depth_exceeds(reply, MAX_DEPTH)
        except (UnicodeDecodeError, ValueError):
            self.fail(f"answered {doing} with a line that is not JSON: {line[:120]!r}")
        except RecursionError:
            too_deep = True
        if too_deep:
            self.fail(f"answered {doing} with JSON nested deeper than {MAX_DEPTH} levels: {line[:60]!r}")
        schema = protocol_schema()
        try:
            validate(reply, schema["$defs"]["reply"], schema, "$")
        except SchemaError as exc:
            self.fail(f"answered {doing} with an invalid reply ({exc}): {line[:120]!r}")
        if reply["id"] != rid:
            self.fail(f"answered id {reply['id']!r} to {doing} (out of order)")
        if "result" in reply:
            try:
                validate(reply["result"], schema["$defs"]["results"]["properties"][method], schema, "$.result")
            except SchemaError as exc:
                self.fail(f"answered {doing} with an invalid result ({exc})")
        return reply

    def shutdown(self, timeout: float = 5.0) -> dict | None:
        """Send ``close`` and wait for exit 0; returns the close result (None if broken)."""
        if self.failure is not None or self.proc.poll() is not None:
            return None
        reply = self.request("close", {}, timeout=timeout)
        try:
            self.proc.stdin.close()
        except OSError:  # pragma: no cover
            pass
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.fail(f"did not exit within {timeout:g} s of close")
        if code != 0:
            self.fail(f"{_describe_exit(code)} after close (expected 0)")
        if "error" in reply:
            self.fail(f"answered close with error {reply['error']}")
        return reply["result"]

    def kill(self) -> None:
        self._kill_group()
        self._stderr_thread.join(timeout=1.0)
        streams = [self.proc.stdin, self.proc.stdout]
        if not self._stderr_thread.is_alive():  # else a process that left the group holds it: leave it open
            streams.append(self.proc.stderr)
        for stream in streams:
            try:
                stream.close()
            except OSError:  # pragma: no cover
                pass
        self._selector.close()


def _finish(channel: _Channel) -> None:
    """Finalizer: close politely, kill otherwise (never raises)."""
    try:
        channel.shutdown()
    except Exception:  # noqa: BLE001
        pass
    channel.kill()


# --------------------------------------------------------------------------- #
# Target and session
# --------------------------------------------------------------------------- #


class ExecTarget(Target):
    """A port behind the process protocol, started from ``command``.

    Args:
        command: the command line (a string split like a shell does, or a list).
        timeout: seconds the port may take to answer one request (default 30).
        cwd: working directory of the port (default: the current one).
        name, profile, spec: as for every :class:`~.base.Target`; ``profile``
            defaults to the one the port claims in ``hello`` (else ``paper``).
    """

    def __init__(self, command, *, timeout: float = 30.0, cwd: str | None = None, name: str | None = None,
                 profile: str | None = None, spec: tuple | None = None) -> None:
        argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
        if not argv:
            raise ValueError("exec target: empty command")
        if isinstance(timeout, bool) or not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(f"exec target: timeout must be a positive number of seconds, got {timeout!r}")
        self.command = command if isinstance(command, str) else shlex.join(argv)
        self.name = name or f"exec:{self.command}"
        self.spec = spec
        self.channel = _Channel(argv, cwd=cwd, timeout=float(timeout), label=self.command)
        self._finalizer = weakref.finalize(self, _finish, self.channel)
        self._pending_end: list = []
        self.sent = {"sessions": 0, "steps": 0, "groups": 0}
        reply = self.channel.request("hello", {"protocol": PROTOCOL_VERSION, "client": "radam-ref"})
        if "error" in reply:
            err = reply["error"]
            self.channel.fail(f"refused hello for protocol {PROTOCOL_VERSION}: "
                              f"error {err['code']}: {err['message']}")
        hello = reply["result"]
        self.port_name, self.port_version = hello["name"], hello["version"]
        caps = hello["capabilities"]
        self.capabilities = caps
        claimed = caps.get("profile", "paper")
        if claimed not in PROFILES:
            self.channel.fail(f"claims the profile {claimed!r} in hello; radam-ref knows {', '.join(PROFILES)}")
        self.profile = profile or claimed
        self.dtypes = tuple(caps.get("dtypes", ("float64",)))
        self.default_dtype = "float64" if "float64" in self.dtypes else self.dtypes[0]
        self.tunable = frozenset(caps.get("options", ()))
        self.weight_decay_modes = frozenset(caps.get("weight_decay_modes", ("none",)))
        features = {"param_groups": "param_groups", "add_group": "add_param_group", "save_state": "state_dict",
                    "grad_none": "grad_none", "inputs": "side_effects", "complex": "complex"}
        self.features = frozenset(ours for theirs, ours in features.items() if caps.get(theirs) is True)

    def describe(self) -> str:
        return f"{self.port_name} {self.port_version} (exec:{self.command})"

    # -------------------------------------------------------------- #

    def call(self, method: str, params: dict) -> dict:
        """One request; ends dropped sessions first.  Maps error replies to
        NotSupported / TargetError; protocol breaches raise PortFailure."""
        while self._pending_end:
            record = self._pending_end.pop()
            self._end(record)
        reply = self.channel.request(method, params)
        if "error" in reply:
            err = reply["error"]
            text = f"{self.port_name} answered {method} with error {err['code']}: {err['message']}"
            if err["code"] in (METHOD_NOT_FOUND, UNSUPPORTED):
                raise NotSupported(text)
            raise TargetError(text)
        return reply["result"]

    def _end(self, record: dict) -> None:
        if record["ended"]:
            return
        record["ended"] = True
        result = self.call("end", {"session": record["session"]})
        if (result["steps"], result["groups"]) != (record["steps"], record["groups"]):
            self.channel.fail(
                f"ended session {record['session']} counting {result['steps']} steps and {result['groups']} "
                f"groups; the suite sent {record['steps']} steps and {record['groups']} groups")

    def shutdown(self) -> dict | None:
        """Close the port (``close``, then exit 0), checking its counts against what
        was sent; returns the close result.  Later use of the target fails."""
        while self._pending_end:
            self._end(self._pending_end.pop())
        result = self.channel.shutdown()
        self._finalizer.detach()
        self.channel.kill()
        if result is not None and result != self.sent:
            raise PortFailure(f"port {self.command!r} closed counting {result}; the suite sent {self.sent}")
        return result

    def open(self, groups, dtype: str) -> "ExecSession":
        if dtype not in self.dtypes:
            raise NotSupported(f"dtype {dtype} (the port supports {', '.join(self.dtypes)})")
        if len(groups) > 1 and "param_groups" not in self.features:
            raise NotSupported("several parameter groups")
        for group in groups:
            self._check_config(group.config)
        result = self.call("open", {"dtype": dtype, "groups": [_group_json(g) for g in groups]})
        self.sent["sessions"] += 1
        self.sent["groups"] += len(groups)
        return ExecSession(self, result["session"], groups)

    def _check_config(self, config: RAdamConfig) -> None:
        missing = self.unsupported(config)
        if missing:
            raise NotSupported(f"the port cannot be told {', '.join(missing)}")


class ExecSession(Session):
    """One optimizer instance inside the port."""

    def __init__(self, target: ExecTarget, session: int, groups) -> None:
        self.target = target
        self.record = {"session": session, "steps": 0, "groups": len(groups), "ended": False}
        self.shapes = [[tuple(np.shape(p)) for p in g.params] for g in groups]
        self.values = [[np.array(p, dtype=np.complex128 if np.iscomplexobj(p) else np.float64) for p in g.params]
                       for g in groups]
        self._finalizer = weakref.finalize(self, target._pending_end.append, self.record)

    def _params(self, **extra) -> dict:
        return {"session": self.record["session"], **extra}

    def step(self, grads) -> None:
        if len(grads) != len(self.shapes):  # pragma: no cover - a suite bug
            raise ValueError(f"step: {len(grads)} gradient groups for {len(self.shapes)} parameter groups")
        if any(g is None for group in grads for g in group) and "grad_none" not in self.target.features:
            raise NotSupported("a None gradient")
        payload = [[None if g is None else encode_array(g) for g in group] for group in grads]
        result = self.target.call("step", self._params(grads=payload))
        self.record["steps"] += 1
        self.target.sent["steps"] += 1
        self.values = self._decode_groups(result["params"], "step", allow_null=False)

    def _decode_groups(self, groups: list, method: str, *, allow_null: bool) -> list:
        if len(groups) != len(self.shapes):
            raise TargetError(f"{self.target.port_name} answered {method} with {len(groups)} groups, "
                              f"expected {len(self.shapes)}")
        out = []
        for gi, (group, shapes) in enumerate(zip(groups, self.shapes)):
            if len(group) != len(shapes):
                raise TargetError(f"{self.target.port_name} answered {method} with {len(group)} parameters in "
                                  f"group {gi}, expected {len(shapes)}")
            row = []
            for pi, (array, shape) in enumerate(zip(group, shapes)):
                if array is None:
                    if not allow_null:
                        self.target.channel.fail(f"answered {method} with null parameter values")
                    row.append(None)
                    continue
                problem = None
                try:
                    row.append(decode_array(array))
                except ValueError as exc:
                    problem = str(exc)
                if problem is not None:
                    self.target.channel.fail(f"answered {method} with a malformed array ({problem})")
                if row[-1].shape != shape:
                    raise TargetError(f"{self.target.port_name} answered {method} with shape {list(row[-1].shape)} "
                                      f"for parameter {pi} of group {gi}, whose shape is {list(shape)}")
            out.append(row)
        return out

    def params(self) -> list:
        return [[v.copy() for v in group] for group in self.values]

    def add_group(self, group) -> None:
        if "add_param_group" not in self.target.features:
            raise NotSupported("adding a parameter group after construction")
        self.target._check_config(group.config)
        self.target.call("add_group", self._params(group=_group_json(group)))
        self.record["groups"] += 1
        self.target.sent["groups"] += 1
        self.shapes.append([tuple(np.shape(p)) for p in group.params])
        self.values.append([np.array(p, dtype=np.float64) for p in group.params])

    def save(self) -> str:
        if "state_dict" not in self.target.features:
            raise NotSupported("saving optimizer state")
        state = self.target.call("save_state", self._params())["state"]
        return json.dumps(state, separators=(",", ":"))  # a real serialisation round trip

    def restore(self, blob: str) -> None:
        if "state_dict" not in self.target.features:
            raise NotSupported("restoring optimizer state")
        self.target.call("load_state", self._params(state=json.loads(blob)))

    def last_inputs(self) -> dict:
        if "side_effects" not in self.target.features:
            raise NotSupported("reporting the inputs of a step")
        result = self.target.call("inputs", self._params())
        held = self._decode_groups(result["grads"], "inputs", allow_null=True)
        flat = [g for group in held for g in group if g is not None]
        return {"grads": [(g, g) for g in flat]}

    def close(self) -> None:
        if self._finalizer.detach() is not None and self.target.channel.failure is None:
            self.target._end(self.record)
