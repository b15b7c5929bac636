"""Golden vectors: shipped files are valid and reproducible, the project's
implementations pass them, and corrupted files are caught."""

from __future__ import annotations

import copy
import json
import os
import pathlib
import re

import pytest

from radam_ref import PROFILES
from radam_ref.conformance import resolve_target, vectors
from radam_ref.conformance.adapters.registry import TargetUnavailable
from radam_ref.conformance.schema import SchemaError, validate


def _schema():
    with open(vectors.schema_path()) as fh:
        return json.load(fh)


@pytest.mark.parametrize("profile", list(PROFILES))
def test_shipped_file_is_valid_consistent_and_reproduced_by_the_generator(profile):
    assert vectors.validate_file(vectors.vector_path(profile)) == []


def test_vectors_stay_small():
    total = sum(os.path.getsize(vectors.vector_path(p)) for p in PROFILES)
    assert total < 1_000_000


def test_vectors_cover_every_flag_and_both_verdicts():
    data = vectors.load(vectors.vector_path("paper"))
    flags = {f for g in data["testGroups"] for t in g["tests"] for f in t["flags"]}
    assert flags == set(data["notes"])
    results = {t["result"] for g in data["testGroups"] for t in g["tests"]}
    assert results == {"valid", "acceptable"}
    assert {g["dtype"] for g in data["testGroups"]} == {"float64", "float32"}


@pytest.mark.parametrize("mutate,needle", [
    (lambda d: d["testGroups"][0]["tests"][0].pop("tcId"), "missing required property 'tcId'"),
    (lambda d: d.__setitem__("numberOfTests", 3), "numberOfTests"),
    (lambda d: d["testGroups"][0]["tests"][0]["expected"][0].__setitem__(0, "0x1.0p+0"),
     "$.testGroups[0].tests[0].expected changed"),
    (lambda d: d["testGroups"][0]["tests"][0]["expected"][0].__setitem__(0, "1.0"), "does not match"),
    (lambda d: d["testGroups"][0]["tests"][0]["flags"].append("Unknown"), "has no note"),
])
def test_corrupted_files_are_caught(tmp_path, mutate, needle):
    data = vectors.load(vectors.vector_path("paper"))
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    problems = vectors.validate_file(str(path))
    assert problems and needle in " ".join(problems)


def test_small_validator_agrees_with_jsonschema():
    jsonschema = pytest.importorskip("jsonschema")
    schema = _schema()
    good = vectors.load(vectors.vector_path("torch"))
    jsonschema.validate(good, schema)
    validate(good, schema)
    bad = copy.deepcopy(good)
    bad["testGroups"][0]["dtype"] = "float16"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    with pytest.raises(SchemaError):
        validate(bad, schema)


#: Profiles that between them take every value of every axis (threshold 4/5, >/>=,
#: ε before/after, the four weight-decay modes, both behaviours before rectification).
AXIS_COVERING_PROFILES = ("paper", "authors", "torch", "optax")


@pytest.mark.parametrize("name", ["radam_ref.step", "radam_ref.backends.numpy", "radam_ref.backends.torch"])
def test_project_implementations_pass_the_vectors(name):
    try:
        target = resolve_target(name)
    except TargetUnavailable as exc:
        pytest.skip(str(exc))
    profiles = PROFILES if name == "radam_ref.step" else AXIS_COVERING_PROFILES
    for profile in profiles:
        target.profile = profile
        results = vectors.check_target(target)
        assert results and all(r.ok for r in results), [(profile, r.tc_id, r.message) for r in results if not r.ok]


@pytest.mark.parametrize("name,kwargs,profile", [
    ("torch.optim.RAdam", {}, "torch"),
    ("torch.optim.RAdam", {"decoupled_weight_decay": True}, "torch_decoupled"),
    ("optax.radam", {"x64": True}, "optax"),
])
def test_third_party_implementations_pass_their_profile(name, kwargs, profile):
    try:
        target = resolve_target(name, kwargs)
    except TargetUnavailable as exc:
        pytest.skip(str(exc))
    results = vectors.check_target(target)
    assert target.profile == profile
    assert all(r.ok is not False for r in results), [(r.tc_id, r.message) for r in results if r.ok is False]
    assert sum(r.ok is True for r in results) >= 20


def test_torch_foreach_fails_exactly_the_eps_zero_vectors():
    """The documented torch finding (foreach=True, ε = 0 → NaN on SGD steps) shows
    in the vectors too, and nothing else does."""
    try:
        target = resolve_target("torch.optim.RAdam", {"foreach": True})
    except TargetUnavailable as exc:
        pytest.skip(str(exc))
    data = vectors.load(vectors.vector_path("torch"))
    eps_zero = {t["tcId"] for g in data["testGroups"] for t in g["tests"] if "EpsZero" in t["flags"]}
    failed = {r.tc_id for r in vectors.check_target(target) if r.ok is False}
    assert failed == eps_zero


def _porting_guide_blocks():
    text = (pathlib.Path(__file__).parent.parent / "docs" / "porting.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    port = next(b for b in blocks if "# porting-guide: port" in b)
    check = next(b for b in blocks if "# porting-guide: check" in b)
    return port, check


def test_porting_guide_port_passes_the_vectors(capsys):
    port, check = _porting_guide_blocks()
    exec(port + check, {})
    assert "12 passed, 0 failed" in capsys.readouterr().out


@pytest.mark.parametrize("breakage,flag_text", [
    (("if rho > 4.0:", "if rho >= 5.0:"), "constant gradient through the first rectified step"),
    (("math.sqrt(v[i]) + eps", "math.sqrt(v[i] / bc2) * math.sqrt(bc2) + eps * math.sqrt(bc2)"),
     "small gradients"),
    (("p[i] = p[i] - (lr * weight_decay) * p[i]", "gi = gi + weight_decay * p[i]"), "weight decay 0.1"),
])
def test_porting_guide_catches_a_broken_port(breakage, flag_text, capsys):
    port, check = _porting_guide_blocks()
    old, new = breakage
    assert old in port
    exec(port.replace(old, new) + check, {})
    out = capsys.readouterr().out
    assert f"({flag_text}) FAILS" in out
    assert ", 0 failed" not in out


# --------------------------------------------------------------------------- #
# Tampering: the seal names the edited field, without the generator
# --------------------------------------------------------------------------- #


def _flip_hex_digit(x: str) -> str:
    i = x.index("x") + 4                       # a digit of the mantissa
    return x[:i] + ("1" if x[i] != "1" else "2") + x[i + 1:]


def _tamper_cases():
    def flip(d):
        row = d["testGroups"][2]["tests"][0]["expected"][3]
        row[1] = _flip_hex_digit(row[1])

    def loosen(d):
        d["testGroups"][1]["tests"][0]["tolerance"][0][0] = "0x1.0000000000000p-4"

    def negative_lr(d):
        d["testGroups"][0]["config"]["lr"] = "-" + d["testGroups"][0]["config"]["lr"]

    def unknown_profile(d):
        d["profile"] = "bogus"

    def huge_lr(d):
        d["testGroups"][0]["config"]["lr"] = "0x1.0000000000000p+4"

    return [
        (flip, ["edited after generation: $.testGroups[2].tests[0].expected changed"]),
        (loosen, ["edited after generation: $.testGroups[1].tests[0].tolerance changed"]),
        (negative_lr, ["edited after generation: $.testGroups[0].config.lr changed",
                       "testGroups[0].config: Invalid learning rate value: -0.1"]),
        (unknown_profile, ["edited after generation: $.profile changed", "profile: unknown profile 'bogus'"]),
        (huge_lr, ["testGroups[0].config: RAdamConfig: learning rate 16.0 > 1.0"]),
    ]


@pytest.mark.parametrize("mutate,needles", _tamper_cases(), ids=["flip", "loosen", "negative-lr",
                                                                 "unknown-profile", "huge-lr"])
def test_validate_no_regenerate_names_the_edited_field(tmp_path, mutate, needles):
    import subprocess
    import sys

    data = vectors.load(vectors.vector_path("paper"))
    mutate(data)
    path = tmp_path / "edited.json"
    path.write_text(vectors.dumps(data), encoding="utf-8")
    problems = vectors.validate_file(str(path), regenerate=False)
    joined = "\n".join(problems)
    for needle in needles:
        assert needle in joined, joined
    cli = subprocess.run([sys.executable, "-m", "radam_ref", "vectors", "validate", "--no-regenerate",
                          str(path)], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 1 and "INVALID" in cli.stdout and needles[0] in cli.stdout, cli.stdout


def test_the_seal_covers_every_field_and_misses_no_edit():
    from radam_ref.conformance.vectors_integrity import check_integrity, field_paths

    data = vectors.load(vectors.vector_path("timm"))
    assert check_integrity(data) == []
    fields = field_paths(data)
    assert len(fields) == len(data["integrity"]["fields"])
    paths = [p for p, _ in fields]
    assert "$.testGroups[0].config.lr" in paths and "$.testGroups[0].tests[0].tolerance" in paths
    for index in range(0, len(fields), 37):      # an edit anywhere is named
        edited = copy.deepcopy(data)
        path = paths[index]
        node, parts = edited, re.findall(r"\.(\w+)|\[(\d+)\]", path[1:])
        for key, i in parts[:-1]:
            node = node[key] if key else node[int(i)]
        key, i = parts[-1]
        node[key if key else int(i)] = ["edited"]
        assert f"$.{path[2:]} changed" in " ".join(check_integrity(edited)), path


def _write(tmp_path, text: str):
    path = tmp_path / "v.json"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_loader_rejects_duplicate_keys(tmp_path):
    text = vectors.dumps(vectors.load(vectors.vector_path("paper")))
    text = text.replace('"schemaVersion": 1,', '"schemaVersion": 1,\n "schemaVersion": 1,', 1)
    with pytest.raises(vectors.VectorFileError, match="duplicate key 'schemaVersion'"):
        vectors.load(_write(tmp_path, text))
    assert vectors.validate_file(_write(tmp_path, text)) == [
        "cannot read: duplicate key 'schemaVersion' in one JSON object"]


@pytest.mark.parametrize("text,needle", [
    ("[" * 100_000 + "]" * 100_000, "nesting deeper than 16"),
    ('{"a": ' * 50 + "1" + "}" * 50, "nesting deeper than 16"),
    ('{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', "schema"),
    ('{"lr": NaN}', "non-standard JSON number NaN"),
    ("[1, 2]", "not an object"),
    ('{"a": 1', "not JSON"),
])
def test_loader_limits_depth_and_reports_bad_json_in_one_line(tmp_path, text, needle):
    problems = vectors.validate_file(_write(tmp_path, text))
    assert len(problems) == 1 and needle in problems[0] and "\n" not in problems[0], problems


def test_loader_limits_size(tmp_path, monkeypatch):
    from radam_ref.conformance import vectors_integrity

    monkeypatch.setattr(vectors_integrity, "MAX_BYTES", 1000)
    path = vectors.vector_path("paper")
    with pytest.raises(vectors.VectorFileError, match="more than the limit of 1000"):
        vectors.load(path)


@pytest.mark.parametrize("extra_field", [("$", "extraField"), ("group", "momentum"), ("test", "note")])
def test_unknown_fields_are_rejected(tmp_path, extra_field):
    data = vectors.load(vectors.vector_path("paper"))
    where, name = extra_field
    target = {"$": data, "group": data["testGroups"][0]["config"], "test": data["testGroups"][0]["tests"][0]}
    target[where][name] = 1
    problems = vectors.validate_file(_write(tmp_path, json.dumps(data)), regenerate=False)
    assert problems == [problems[0]] and "unexpected property" in problems[0] and repr(name) in problems[0]


@pytest.mark.parametrize("argv,needle", [
    (["vectors", "generate", "--out", "MISSING/"], "--out: 'MISSING/' is not an existing directory"),
    (["vectors", "validate", "MISSING.json"], "'MISSING.json' is not an existing file"),
    (["vectors", "generate", "--profile", "bogus"], "unknown profile 'bogus'"),
    (["vectors", "check", "radam_ref.step", "--profile", "bogus"], "unknown profile 'bogus'"),
    (["vectors", "check", "radam_ref.step", "--kwargs", "{"], "--kwargs: invalid JSON"),
    (["demo", "--profile", "bogus"], "radam-ref demo: error: --profile: unknown profile 'bogus'"),
    (["demo", "--steps", "-1"], "--steps must be in [0, 100000], got -1"),
    (["demo", "--steps", "99999999999999999999"], "--steps must be in [0, 100000]"),  # ran for ever
])
def test_cli_usage_errors_are_one_line_with_status_2(tmp_path, argv, needle):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "radam_ref", *argv], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_cli_path_errors_inside_a_command_are_one_line(tmp_path, monkeypatch, capsys):
    """A command that opens a missing path deep inside (here: a stand-in) gets the
    same one-line treatment from the top-level dispatcher."""
    from radam_ref import cli

    def opens_a_missing_file(args):
        open(tmp_path / "nowhere" / "x.json")

    parser, unavailable = cli._build()
    real_build = cli._build

    def build(subcommands=cli.SUBCOMMANDS):
        parser, unavailable = real_build(subcommands)
        parser._subparsers._group_actions[0].choices["demo"].set_defaults(func=opens_a_missing_file)
        return parser, unavailable

    monkeypatch.setattr(cli, "_build", build)
    assert cli.main(["demo"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("radam-ref demo: error: No such file or directory: "), err


# --------------------------------------------------------------------------- #
# Hostile input found by review: each was a traceback or a misleading line
# --------------------------------------------------------------------------- #


def test_an_integer_too_long_to_convert_is_a_one_line_read_error(tmp_path):
    problems = vectors.validate_file(_write(tmp_path, '{"schemaVersion": ' + "9" * 5000 + "}"))
    assert len(problems) == 1 and problems[0].startswith("cannot read: not JSON: Exceeds the limit"), problems


def _cli(tmp_path, *argv):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "radam_ref", "vectors", *argv], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)


@pytest.mark.parametrize("kwargs,needle", [
    ("[1]", "--kwargs: expected a JSON object, got '[1]'"),
    ('"x"', "--kwargs: expected a JSON object"),
    ('{"lr": 0.1}', "'lr' is a hyperparameter the suite draws"),
])
def test_check_kwargs_that_are_not_options_are_usage_errors(tmp_path, kwargs, needle):
    proc = _cli(tmp_path, "check", "radam_ref.step", "--kwargs", kwargs)
    assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_check_finds_a_module_in_the_current_directory(tmp_path):
    # docs/porting.md: `radam-ref vectors check mymodule:step --profile paper`
    (tmp_path / "mymodule.py").write_text("from radam_ref import step\n")
    proc = _cli(tmp_path, "check", "mymodule:step", "--profile", "paper")
    assert proc.returncode == 0 and "24 passed, 0 failed, 0 skipped" in proc.stdout, proc.stdout + proc.stderr


_DYING_PORT = '''
import json, sys
from radam_ref.conformance.scenario import config_from_json
for line in sys.stdin:
    req = json.loads(line)
    if req["method"] == "hello":
        print(json.dumps({"id": req["id"], "result": {"protocol": 1, "name": "dying", "version": "0",
              "capabilities": {"dtypes": ["float64"]}}}), flush=True)
    elif req["method"] == "open":
        print(json.dumps({"id": req["id"], "result": {"session": 0}}), flush=True)
    else:
        sys.stderr.write("dying: out of memory\\n")
        sys.exit(3)
'''


def test_check_reports_a_port_that_dies_as_error_with_status_2(tmp_path):
    import sys

    (tmp_path / "port.py").write_text(_DYING_PORT)
    proc = _cli(tmp_path, "check", f"exec:{sys.executable} port.py")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "ERROR dying 0" in out and "exited with status 3 instead of answering step" in out, out
    assert "dying: out of memory" in out and "Traceback" not in out


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the eps = 0 vectors divide 0 by 0
def test_check_counts_tests_of_an_unsupported_dtype_as_skipped():
    class Float64Only:
        """radam_ref.step, declaring float64 only (as the JS port does)."""

        def __init__(self):
            self.inner = resolve_target("radam_ref.step")
            self.profile, self.dtypes = "paper", ("float64",)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    results = vectors.check_target(Float64Only())
    skipped = [r for r in results if r.ok is None]
    assert len(results) == 24 and len(skipped) == 12, (len(results), len(skipped))
    assert all("dtype float32" in r.message for r in skipped)
    assert all(r.ok for r in results if r.ok is not None)


def test_a_resealed_edit_is_named_by_the_regeneration_check(tmp_path):
    from radam_ref.conformance.vectors_integrity import seal

    data = vectors.load(vectors.vector_path("paper"))
    test = data["testGroups"][0]["tests"][0]
    test["expected"][0] = ["0x1.0000000000000p+0"] * len(test["expected"][0])
    problems = vectors.validate_file(_write(tmp_path, json.dumps(seal(data))))
    assert len(problems) == 1, problems
    assert "at $.testGroups[0].tests[0].expected" in problems[0]
    assert "same generator version: the file was edited and resealed" in problems[0]


@pytest.mark.parametrize("edit,key", [
    (lambda seal_: seal_["fields"].__setitem__(3, "00000000"), "fields"),
    (lambda seal_: seal_.__setitem__("canonicalization", "any"), "canonicalization"),
])
def test_an_edit_of_the_seal_itself_is_caught(tmp_path, edit, key):
    # The digest covers the content, not the seal: an edited seal went unnoticed.
    data = vectors.load(vectors.vector_path("paper"))
    edit(data["integrity"])
    problems = vectors.validate_file(_write(tmp_path, json.dumps(data)), regenerate=False)
    assert problems == [f"edited after generation: integrity.{key} does not match the content"]
