"""Golden test vectors for ports to other languages (Wycheproof style).

One file per profile, ``vectors/radam_<profile>_v1.json``, checked against
``schemas/radam_vectors_schema_v1.json``.  Each file is self-describing
(algorithm, schema, schemaVersion, generatorVersion, numberOfTests, header,
notes, tolerances) and holds test groups that share a config and a dtype
(float64 or float32); each test has an id (``tcId``), flags (see ``notes``),
the initial parameter and the gradient of every step, and the parameter
expected after every step, with a per-element tolerance.

* Floats are ``float.hex`` strings (C99 ``%a``; ``"nan"``, ``"inf"``): exact.
* Inputs of a float32 group are exact float32 values; expected values are the
  spec in float64 (the oracle), tolerances the float32 bound of
  :mod:`.tolerance` — so a port compares its float32 results directly.
* ``result: "valid"``: reproduce ``expected`` within ``tolerance``.
  ``result: "acceptable"``: reproduce ``expected`` or one of ``alternatives``
  (a threshold branch flipped inside the float32 window; the guarded 0/0 → 0
  update when ε = 0).

Files are produced only by ``radam-ref vectors generate``, which seals each with
digests of its content (:mod:`.vectors_integrity`).  ``radam-ref vectors
validate`` reads a file strictly (size, depth, duplicate keys), checks it against
the schema, checks the seal (naming any field edited since generation), the
hyperparameters (each group's config must build a ``RAdamConfig`` without error
or warning), the profile name and the internal consistency, and that the
generator reproduces the file exactly (skipped with ``--no-regenerate``).
``radam-ref vectors check TARGET`` runs a target on them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from importlib import resources

import numpy as np

import radam_ref
from radam_ref import PROFILES, RAdamConfig

from ._dtypes import machine_epsilon, round_to
from .oracle import Oracle, exact_schedule, run_oracle
from .scenario import Group, Scenario, _hex, _unhex, config_from_json
from .tolerance import K, ambiguous_steps, tolerance
from .vectors_integrity import VectorFileError, check_integrity, field_paths, load_strict, seal

__all__ = [
    "SCHEMA_NAME",
    "vector_path",
    "generate",
    "generate_all",
    "load",
    "validate_file",
    "check_target",
    "VectorResult",
    "VectorFileError",
]

SCHEMA_NAME = "radam_vectors_schema_v1.json"
_DTYPES = ("float64", "float32")

_NOTES = {
    "FirstRectified": ("FUNCTIONALITY", "Constant gradient: the first rectified step is visible as the step "
                       "whose update is r_t·m̂·D_t instead of α·m̂."),
    "Random": ("FUNCTIONALITY", "A pseudo-random gradient stream."),
    "ZeroGradient": ("EDGE_CASE", "All-zero gradient tensors at some steps: a normal step (moments decay, the "
                     "counter advances), not a skipped one."),
    "LargeGradient": ("NUMERICS", "Gradients of order 1e3."),
    "SmallGradient": ("NUMERICS", "Gradients of order 1e-6, where ε matters."),
    "SgdMomentum": ("FUNCTIONALITY", "β₂ ≤ 0.6: ρ∞ ≤ 4, never rectified: SGD with bias-corrected momentum."),
    "BetaNearOne": ("NUMERICS", "β₂ = 0.99999: the obvious formulas for ρ_t and 1 − β₂ᵗ cancel; compute the "
                    "step scalars in float64 or with a cancellation-free formula."),
    "WeightDecay": ("FUNCTIONALITY", "λ = 0.1 with the profile's weight-decay mode."),
    "Maximize": ("FUNCTIONALITY", "maximize=True: the gradient is negated first."),
    "BetaOneZero": ("EDGE_CASE", "β₁ = 0: m̂_t = g_t."),
    "EpsZero": ("EDGE_CASE", "ε = 0 and an element whose gradients are all exactly 0: the spec gives "
                "0/0 = NaN on rectified steps (IEEE); the guarded update (no move) is the alternative."),
    "NearThreshold": ("NUMERICS", "ρ_t within 1e-7 (relative) of the threshold: float64 must take the "
                      "spec's branch; in float32 either branch is acceptable."),
}


def vector_path(profile: str) -> str:
    """Path of the shipped vector file of ``profile``."""
    return str(resources.files("radam_ref.conformance") / "vectors" / f"radam_{profile}_v1.json")


def schema_path() -> str:
    return str(resources.files("radam_ref.conformance") / "schemas" / SCHEMA_NAME)


def _streams(rng_seed: int, steps: int, scale: float, zero_steps=()) -> tuple:
    rng = np.random.default_rng(rng_seed)
    params = rng.standard_normal(3)
    grads = scale * rng.standard_normal((steps, 3))
    for t in zero_steps:
        grads[t - 1] = 0.0
    return params, grads


def _cases(base: RAdamConfig) -> list:
    """(comment, flags, config, params, grads) of every test of a profile."""
    lr = 0.1
    default = base.replace(lr=lr, weight_decay=0.0, maximize=False)
    const = np.tile(np.array([1.0, -0.5, 0.25]), (8, 1))
    out = [
        ("constant gradient through the first rectified step", ["FirstRectified"], default,
         np.zeros(3), const),
    ]
    p, g = _streams(1, 10, 1.0)
    out.append(("random gradients, default betas", ["Random"], default, p, g))
    p, g = _streams(2, 8, 1.0, zero_steps=(1, 4))
    out.append(("all-zero gradient at steps 1 and 4", ["ZeroGradient"], default, p, g))
    p, g = _streams(3, 8, 1e3)
    out.append(("large gradients", ["LargeGradient"], default, p, g))
    p, g = _streams(4, 8, 1e-6)
    out.append(("small gradients", ["SmallGradient"], default, p, g))
    p, g = _streams(5, 6, 1.0)
    out.append(("β₂ = 0.5: SGD with bias-corrected momentum", ["SgdMomentum"],
                default.replace(betas=(0.9, 0.5)), p, g))
    p, g = _streams(6, 8, 1.0)
    out.append(("β₂ = 0.99999", ["BetaNearOne"], default.replace(betas=(0.9, 0.99999)), p, g))
    p, g = _streams(7, 10, 1.0)
    out.append(("weight decay 0.1", ["WeightDecay"], default.replace(weight_decay=0.1), p, g))
    p, g = _streams(8, 8, 1.0)
    out.append(("maximize", ["Maximize"], default.replace(maximize=True), p, g))
    p, g = _streams(9, 8, 1.0)
    out.append(("β₁ = 0", ["BetaOneZero"], default.replace(betas=(0.0, 0.999)), p, g))
    p, g = _streams(10, 8, 1.0)
    g[:, 0] = 0.0
    out.append(("ε = 0 with an element whose gradient is always 0", ["EpsZero"], default.replace(eps=0.0), p, g))
    from .checks.threshold import near_threshold_beta2

    t = int(base.threshold) + 1
    b2 = near_threshold_beta2(t, base.threshold * (1.0 + 1e-7))
    if b2 is not None:
        out.append((f"ρ_{t} = threshold·(1 + 1e-7)", ["NearThreshold"], default.replace(betas=(0.9, b2)),
                    np.zeros(3), np.tile(np.array([1.0, -0.5, 0.25]), (t + 2, 1))))
    return out


def _hexes(a) -> list:
    return [_hex(x) for x in np.asarray(a, dtype=np.float64).reshape(-1)]


def _config_json(config: RAdamConfig) -> dict:
    from .scenario import config_to_json

    data = config_to_json(config)
    data.pop("profile", None)
    data.pop("nonfinite", None)
    return data


def _test(tc_id: int, comment: str, flags: list, config: RAdamConfig, params, grads, dtype: str) -> dict:
    p0 = round_to(params, dtype)
    gs = [round_to(g, dtype) for g in grads]
    scenario = Scenario([Group([p0], config)], [[[g]] for g in gs], dtype=dtype)
    traj = run_oracle(scenario)
    oracle = Oracle([Group([p0], config)])
    for g in gs:
        oracle.step([[g]])
    (m, v, _), = oracle.moments()[0]
    alternatives = []
    flips = [(0, t) for t in ambiguous_steps(config, dtype, len(gs))]
    if flips:
        alternatives.append(run_oracle(scenario, flips=frozenset(flips)))
    if config.eps == 0.0:
        alternatives.append(run_oracle(scenario.with_configs(lambda c: c.replace(eps=1e-300))))
    test = {
        "tcId": tc_id,
        "comment": comment,
        "flags": list(flags),
        "params": _hexes(p0),
        "grads": [_hexes(g) for g in gs],
        "expected": [_hexes(v_[0][0]) for v_ in traj.values],
        "tolerance": [_hexes(tolerance(s[0][0], dtype)) for s in traj.scales],
        "rectified": [bool(exact_schedule(config, t).rectified) for t in range(1, len(gs) + 1)],
        "rho": [_hex(exact_schedule(config, t).rho_t) for t in range(1, len(gs) + 1)],
        "finalState": {"m": _hexes(m), "v": _hexes(v)},
    }
    if alternatives:
        test["alternatives"] = [[_hexes(v_[0][0]) for v_ in alt.values] for alt in alternatives]
    test["result"] = "acceptable" if alternatives else "valid"
    return test


def generate(profile: str) -> dict:
    """The vector file of ``profile`` as a JSON-ready dict (deterministic)."""
    base = PROFILES[profile].config()
    groups, tc_id = [], 0
    for dtype in _DTYPES:
        by_config: dict = {}
        for comment, flags, config, params, grads in _cases(base):
            key = json.dumps(_config_json(config), sort_keys=True)
            by_config.setdefault(key, (config, []))[1].append((comment, flags, params, grads))
        for key, (config, cases) in by_config.items():
            tests = []
            for comment, flags, params, grads in cases:
                tc_id += 1
                tests.append(_test(tc_id, comment, flags, config, params, grads, dtype))
            groups.append({"type": "RAdamTrajectory", "dtype": dtype, "config": _config_json(config),
                           "tests": tests})
    return seal({
        "algorithm": "RAdam",
        "schema": SCHEMA_NAME,
        "schemaVersion": 1,
        "generatorVersion": radam_ref.__version__,
        "profile": profile,
        "profileSource": PROFILES[profile].source,
        "numberOfTests": tc_id,
        "header": [
            "Golden vectors of RAdam (Liu et al., ICLR 2020), produced by `radam-ref vectors generate` from "
            "the spec (radam_ref) in float64; do not edit by hand.",
            "Each test: one parameter of 3 elements; apply the group's config for len(grads) steps from "
            "params; after step t the parameter must equal expected[t-1] within tolerance[t-1] "
            "(per element; NaN expects NaN).",
            "Floats are float.hex strings. rectified[t-1] and rho[t-1] are the spec's threshold decision "
            "and ρ_t; finalState holds m and v after the last step (float64 oracle).",
        ],
        "notes": {name: {"bugType": kind, "description": text} for name, (kind, text) in _NOTES.items()},
        "tolerances": {
            "model": "|got - expected| <= K*(eps_dtype*S_t + eps_float64*S64_t) + smallest normal, "
                     "with the error scales S of radam_ref.conformance.tolerance; the per-element values "
                     "are given in each test's 'tolerance'.",
            "K": K,
            "epsilon": {d: _hex(machine_epsilon(d)) for d in _DTYPES},
        },
        "testGroups": groups,
    })


def dumps(data: dict) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def generate_all(out_dir: str | None = None, profiles=None) -> list:
    """Write every profile's file; returns the paths."""
    paths = []
    for profile in profiles or PROFILES:
        path = os.path.join(out_dir, f"radam_{profile}_v1.json") if out_dir else vector_path(profile)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(dumps(generate(profile)))
        paths.append(path)
    return paths


def load(path: str) -> dict:
    """Read a vector file strictly: :class:`VectorFileError` for an oversized or
    too deeply nested file, duplicate keys or invalid JSON; ``OSError`` if unreadable."""
    return load_strict(path)


def _check_group_config(index: int, group: dict, profile: str) -> list:
    """The group's hyperparameters must make a RAdamConfig with no error and no warning."""
    import warnings

    where = f"testGroups[{index}].config"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            config_from_json({**group["config"], "profile": profile})
    except (ValueError, TypeError, OverflowError) as exc:
        return [f"{where}: {exc}"]
    return [f"{where}: {w.message}" for w in caught if issubclass(w.category, radam_ref.RAdamConfigWarning)]


def _check_numbers(test: dict) -> list:
    problems = []
    for key in ("tolerance",):
        for t, row in enumerate(test[key], start=1):
            for i, x in enumerate(row):
                value = _unhex(x)
                if not value >= 0.0:  # inf is legal: where NaN is expected
                    problems.append(f"tcId {test['tcId']}: {key}[{t - 1}][{i}] = {x} is negative or NaN")
    return problems


def validate_file(path: str, *, regenerate: bool = True) -> list:
    """Problems with a vector file: reading, schema, seal, hyperparameters, profile,
    internal consistency, and (with ``regenerate``) any difference from what the
    generator produces now.  ``OSError`` if the file cannot be opened."""
    from .schema import SchemaError, validate

    try:
        data = load(path)
    except VectorFileError as exc:
        return [f"cannot read: {exc}"]
    with open(schema_path(), encoding="utf-8") as fh:
        schema = json.load(fh)
    try:
        validate(data, schema)
    except SchemaError as exc:
        return [f"schema: {exc}"]
    problems = check_integrity(data)
    if data["profile"] not in PROFILES:
        problems.append(f"profile: unknown profile {data['profile']!r} (known: {', '.join(PROFILES)})")
    ids = [t["tcId"] for g in data["testGroups"] for t in g["tests"]]
    if len(ids) != data["numberOfTests"]:
        problems.append(f"numberOfTests is {data['numberOfTests']} but the file holds {len(ids)} tests")
    if len(set(ids)) != len(ids):
        problems.append("tcId values are not unique")
    for index, group in enumerate(data["testGroups"]):
        if data["profile"] in PROFILES:
            problems.extend(_check_group_config(index, group, data["profile"]))
        for test in group["tests"]:
            n = len(test["grads"])
            for key in ("expected", "tolerance", "rectified", "rho"):
                if len(test[key]) != n:
                    problems.append(f"tcId {test['tcId']}: {key} has {len(test[key])} entries for {n} steps")
            problems.extend(_check_numbers(test))
            for flag in test["flags"]:
                if flag not in data["notes"]:
                    problems.append(f"tcId {test['tcId']}: flag {flag!r} has no note")
            if (test["result"] == "acceptable") != ("alternatives" in test):
                problems.append(f"tcId {test['tcId']}: result {test['result']!r} inconsistent with alternatives")
    if regenerate and not problems:
        fresh = generate(data["profile"])
        if dumps(fresh) != dumps(data):
            problems.append(_regeneration_problem(data, fresh))
    return problems


def _regeneration_problem(data: dict, fresh: dict) -> str:
    """Why ``data`` (sealed, so consistent with itself) differs from the generator's ``fresh``."""
    ours = dict(field_paths(data))
    theirs = dict(field_paths(fresh))
    changed = [path for path in theirs if ours.get(path, object()) != theirs[path]]
    changed += [path for path in ours if path not in theirs]
    where = f" at {', '.join(changed[:3])}{' …' if len(changed) > 3 else ''}" if changed else ""
    if data.get("generatorVersion") != fresh.get("generatorVersion"):
        why = f"generated by version {data.get('generatorVersion')}, this is {fresh.get('generatorVersion')}: regenerate"
    else:
        why = "same generator version: the file was edited and resealed, or the spec changed"
    return f"differs from what `radam-ref vectors generate` produces{where} ({why})"


@dataclasses.dataclass
class VectorResult:
    path: str
    tc_id: int
    ok: bool | None  # None: skipped (the target cannot be told the test's config)
    result: str
    message: str = ""


def _matches(got: list, expected: list, tol: list) -> tuple:
    for t, (g_step, e_step, tol_step) in enumerate(zip(got, expected, tol), start=1):
        for i, (g, e, d) in enumerate(zip(g_step, e_step, tol_step)):
            e, d = _unhex(e), _unhex(d)
            if np.isnan(e):
                if not np.isnan(g):
                    return False, f"step {t}, element {i}: expected NaN, got {g!r}"
            elif not (abs(g - e) <= d):
                return False, f"step {t}, element {i}: expected {e!r}, got {g!r} (tolerance {d:.3g})"
    return True, ""


def check_target(target, paths=None) -> list:
    """Run ``target`` (a :class:`~.adapters.Target`) on the vector files of its
    profile (or ``paths``) and return a :class:`VectorResult` per test."""
    from .adapters.base import NotSupported, TargetError
    from .compare import observe

    paths = paths or [vector_path(target.profile)]
    out = []
    for path in paths:
        data = load(path)
        for group in data["testGroups"]:
            dtype = group["dtype"]
            config = config_from_json({**group["config"], "profile": data["profile"]})
            missing = target.unsupported(config)
            if dtype not in target.dtypes:
                missing = [f"dtype {dtype}"]
            for test in group["tests"]:
                if missing:
                    out.append(VectorResult(path, test["tcId"], None, test["result"],
                                            f"skipped: cannot be told {', '.join(missing)}"))
                    continue
                params = np.array([_unhex(x) for x in test["params"]])
                grads = [np.array([_unhex(x) for x in g]) for g in test["grads"]]
                scenario = Scenario([Group([params], config)], [[[g]] for g in grads], dtype=dtype)
                try:
                    observed = observe(target, scenario)
                except (TargetError, NotSupported) as exc:
                    out.append(VectorResult(path, test["tcId"], False, test["result"], str(exc)))
                    continue
                got = [[float(x) for x in v[0][0].reshape(-1)] for v in observed.values]
                ok, message = _matches(got, test["expected"], test["tolerance"])
                if not ok:
                    for alt in test.get("alternatives", ()):
                        if _matches(got, alt, test["tolerance"])[0]:
                            ok, message = True, "matched an alternative"
                            break
                out.append(VectorResult(path, test["tcId"], ok, test["result"], message))
    return out
