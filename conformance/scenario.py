"""A scenario: the exact inputs of one conformance run, replayable anywhere.

A :class:`Scenario` holds the initial parameter groups (values and the spec
:class:`~radam_ref.RAdamConfig` of each), the gradient of every parameter at every
step (``None`` where a parameter has no gradient), groups added part-way through,
and the dtype the target runs in.  Every check builds scenarios, runs them through
the target and through the oracle, and compares.  A failing scenario is written
into the repro as JSON (floats as ``float.hex`` strings, so it round-trips
bit-exactly), and :func:`radam_ref.conformance.replay` runs it again.

Long gradient streams are not spelled out: a :class:`GeneratedStream` holds a seed
and a recipe, and regenerates the same arrays on demand.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Sequence

import numpy as np

from radam_ref import RAdamConfig

from ._dtypes import check_dtype, round_to

__all__ = [
    "Group",
    "Scenario",
    "GeneratedStream",
    "config_to_json",
    "config_from_json",
    "array_to_json",
    "array_from_json",
]


@dataclasses.dataclass
class Group:
    """One parameter group: initial values (float64/complex128 NumPy arrays holding
    values exact in the scenario's dtype) and the spec config that governs them."""

    params: list
    config: RAdamConfig

    def to_json(self) -> dict:
        return {"config": config_to_json(self.config), "params": [array_to_json(p) for p in self.params]}

    @classmethod
    def from_json(cls, data: dict) -> "Group":
        return cls([array_from_json(p) for p in data["params"]], config_from_json(data["config"]))


@dataclasses.dataclass(frozen=True)
class GeneratedStream:
    """A long gradient stream described by a recipe instead of its values.

    Gradient of parameter ``j`` of group ``i`` at step ``t`` (1-based) is
    ``scale * (sin(0.37 t + j + 1.3 i) + noise)``, where ``noise`` comes from
    ``numpy.random.default_rng(seed)``; every ``zero_every``-th step is exactly 0
    (0 disables).  Values are rounded to ``dtype``.
    """

    seed: int
    steps: int
    shapes: tuple  # per group, tuple of parameter shapes
    scale: float = 1.0
    noise: float = 0.5
    zero_every: int = 0
    dtype: str = "float64"

    def arrays(self) -> list:
        rng = np.random.default_rng(self.seed)
        out = []
        ts = np.arange(1, self.steps + 1, dtype=np.float64)
        per_param = []
        for gi, shapes in enumerate(self.shapes):
            group = []
            for j, shape in enumerate(shapes):
                shape = tuple(shape)
                size = int(np.prod(shape)) if shape else 1
                base = np.sin(0.37 * ts[:, None] + j + 1.3 * gi + np.arange(size)[None, :])
                values = self.scale * (base + self.noise * rng.standard_normal((self.steps, size)))
                if self.zero_every:
                    values[self.zero_every - 1 :: self.zero_every] = 0.0
                group.append(round_to(values, self.dtype).reshape((self.steps,) + shape))
            per_param.append(group)
        for t in range(self.steps):
            out.append([[arr[t] for arr in group] for group in per_param])
        return out

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["scale"] = float(self.scale).hex()
        data["noise"] = float(self.noise).hex()
        data["shapes"] = [[list(s) for s in g] for g in self.shapes]
        return {"generated": data}

    @classmethod
    def from_json(cls, data: dict) -> "GeneratedStream":
        d = dict(data["generated"])
        d["scale"] = float.fromhex(d["scale"])
        d["noise"] = float.fromhex(d["noise"])
        d["shapes"] = tuple(tuple(tuple(s) for s in g) for g in d["shapes"])
        return cls(**d)


@dataclasses.dataclass
class Scenario:
    """Everything one run needs.

    Attributes:
        groups: the initial parameter groups.
        grads: per step (1-based step ``t`` is ``grads[t-1]``), per group, per
            parameter: an array or ``None`` (no gradient: the parameter is skipped).
            Groups added later appear from the step they are added.  Or a
            :class:`GeneratedStream`.
        dtype: the dtype the target's parameters (and gradients) have.
        added: ``{t: Group}``: the group is added just before step ``t``.
        record_every: compare parameters after every ``record_every``-th step (and
            after the last); 1 compares every step.
    """

    groups: list
    grads: Any
    dtype: str = "float64"
    added: dict = dataclasses.field(default_factory=dict)
    record_every: int = 1
    stop: int | None = None

    def __post_init__(self) -> None:
        check_dtype(self.dtype)
        self._cache = None

    @property
    def steps(self) -> int:
        total = self.grads.steps if isinstance(self.grads, GeneratedStream) else len(self.grads)
        return total if self.stop is None else min(total, self.stop)

    def truncated(self, steps: int) -> "Scenario":
        """The same scenario, stopped after ``steps`` steps."""
        return self.replace(stop=steps)

    def grads_at(self, t: int) -> list:
        """Gradients of step ``t`` (1-based): per group, per parameter."""
        if isinstance(self.grads, GeneratedStream):
            if self._cache is None:
                self._cache = self.grads.arrays()
            return self._cache[t - 1]
        return self.grads[t - 1]

    def recorded(self, t: int) -> bool:
        return t == self.steps or t % self.record_every == 0

    def all_groups(self) -> list:
        """Initial groups then added ones, in the order the target sees them."""
        return list(self.groups) + [self.added[t] for t in sorted(self.added)]

    def replace(self, **changes) -> "Scenario":
        return dataclasses.replace(self, **changes)

    def with_configs(self, fn) -> "Scenario":
        """A copy whose every group config is ``fn(config)``."""
        return self.replace(
            groups=[Group(g.params, fn(g.config)) for g in self.groups],
            added={t: Group(g.params, fn(g.config)) for t, g in self.added.items()},
        )

    def to_json(self) -> dict:
        if isinstance(self.grads, GeneratedStream):
            grads = self.grads.to_json()
        else:
            grads = [
                [[None if g is None else array_to_json(g) for g in group] for group in step]
                for step in self.grads
            ]
        return {
            "dtype": self.dtype,
            "groups": [g.to_json() for g in self.groups],
            "added": {str(t): g.to_json() for t, g in self.added.items()},
            "grads": grads,
            "record_every": self.record_every,
            "stop": self.stop,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))

    @classmethod
    def from_json(cls, data) -> "Scenario":
        if isinstance(data, str):
            data = json.loads(data)
        grads = data["grads"]
        if isinstance(grads, dict):
            grads = GeneratedStream.from_json(grads)
        else:
            grads = [
                [[None if g is None else array_from_json(g) for g in group] for group in step]
                for step in grads
            ]
        return cls(
            groups=[Group.from_json(g) for g in data["groups"]],
            grads=grads,
            dtype=data.get("dtype", "float64"),
            added={int(t): Group.from_json(g) for t, g in data.get("added", {}).items()},
            record_every=int(data.get("record_every", 1)),
            stop=data.get("stop"),
        )


# --------------------------------------------------------------------------- #
# JSON encoding: floats as float.hex strings (exact), "nan"/"inf" as themselves.
# --------------------------------------------------------------------------- #


def _hex(x: float) -> str:
    x = float(x)
    if math.isnan(x):
        return "nan"
    return x.hex()


def _unhex(s: str) -> float:
    return float.fromhex(s) if s not in ("nan", "inf", "-inf") else float(s)


def array_to_json(a: np.ndarray) -> dict:
    a = np.asarray(a)
    if np.iscomplexobj(a):
        data = [[_hex(z.real), _hex(z.imag)] for z in a.reshape(-1)]
        kind = "complex"
    else:
        data = [_hex(x) for x in a.reshape(-1)]
        kind = "real"
    return {"shape": list(a.shape), "kind": kind, "data": data}


def array_from_json(d: dict) -> np.ndarray:
    shape = tuple(d["shape"])
    if d.get("kind") == "complex":
        values = np.array([_unhex(r) + 1j * _unhex(i) for r, i in d["data"]], dtype=np.complex128)
    else:
        values = np.array([_unhex(x) for x in d["data"]], dtype=np.float64)
    return values.reshape(shape)


def config_to_json(config: RAdamConfig) -> dict:
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float):
            value = _hex(value)
        elif isinstance(value, tuple):
            value = [_hex(v) for v in value]
        out[f.name] = value
    return out


def config_from_json(d: dict) -> RAdamConfig:
    kwargs = {}
    for f in dataclasses.fields(RAdamConfig):
        if f.name not in d:
            continue
        value = d[f.name]
        if f.name == "betas":
            value = tuple(_unhex(v) for v in value)
        elif isinstance(value, str) and f.name in ("lr", "eps", "weight_decay", "threshold", "eps_root"):
            value = _unhex(value)
        kwargs[f.name] = value
    return RAdamConfig(**kwargs)


def stream(values: Sequence, dtype: str = "float64") -> list:
    """Convenience: ``values[t][i]`` (one group) as a scenario gradient list."""
    return [[[round_to(np.asarray(g, dtype=np.float64 if not np.iscomplexobj(g) else np.complex128), dtype)
              if g is not None else None for g in step]] for step in values]
