"""The committed results page: verdicts and fingerprints of torch.optim.RAdam and
optax.radam under their own and the paper profile, every finding with its repro,
the third-party RAdams people use (timm, torch_optimizer, pytorch_optimizer and
the paper authors' ``radam.py`` when ``RADAM_REF_AUTHORS_FILE`` points at it),
checked with no ``--profile``, each with what a reader of its source concludes,
its findings and their causes, and a short repro per finding that this page's
generator runs (its output is on the page), and the ``--all`` survey.

Regenerate with ``radam-ref conformance --results-page docs/conformance-results.md``
(or ``make results``).  Everything on the page comes from the runs; the only
hand-written text explains the known mechanisms behind findings, keyed by
(target, check), and is printed only when that finding is present.
"""

from __future__ import annotations

import platform

from .adapters.registry import ALL_TARGETS, TargetUnavailable, target_label
from .checks import CHECKS
from .report import SYMBOLS, fingerprint_line
from .runner import Report, run_conformance

__all__ = ["RUNS", "THIRD_PARTY", "build_results_page", "write_results_page", "third_party_section"]

#: Third-party targets checked with no --profile (the authors' file only when
#: RADAM_REF_AUTHORS_FILE is set).
THIRD_PARTY = (
    ("timm.optim.RAdam", {}),
    ("timm.optim.RAdamLegacy", {}),
    ("torch_optimizer.RAdam", {}),
    ("pytorch_optimizer.RAdam", {}),
    ("authors.RAdam", {}),
    ("authors.PlainRAdam", {}),
)

_AUTHORS_NOTE = (
    "`p.data.float()` … `p.data.copy_(p_data_fp32)` computes in float32 whatever the parameter dtype (float64 "
    "parameters get float32 results; `.float()` of a complex tensor keeps the real part, so copying back zeroes "
    "the imaginary part)."
)

#: What a careful reader of each target's source concludes (shown beside its verdict).
READING = {
    "timm.optim.RAdam": (
        "`timm/optim/__init__.py` re-exports `torch.optim.RAdam` (`from torch.optim import … RAdam`): the same "
        "class, so the same claim (`torch`: ρ_t > 5, ε before bias correction, L2 weight decay, SGD with "
        "bias-corrected momentum before rectification) and the same verdict as torch's own."
    ),
    "timm.optim.RAdamLegacy": (
        "The authors' code before 2021: ρ_t ≥ 5, ε added to sqrt(v) before bias correction, decoupled decay "
        "θ − (αλ)θ on every step, SGD with bias-corrected momentum before rectification — the `timm` profile.  "
        "The per-step cache of the original was removed (a comment in the source says why).  "
        "`p.float()` … `p.copy_(p_fp32)` computes in float32 whatever the parameter dtype: float64 parameters "
        "get float32 results, and complex parameters lose their imaginary part."
    ),
    "torch_optimizer.RAdam": (
        "The authors' code before 2021 (SGD with bias-corrected momentum before rectification) with decoupled "
        "decay θ − (αλ)θ on every step (its docstring calls `weight_decay` an L2 penalty; the code decays θ "
        "directly) — the `timm` profile.  The step size, with lr and β baked in, is cached per step number in "
        "`group['buffer']`, one list shared by every group whose betas equal the constructor's (the constructor "
        "gives a group its own buffer only when its betas differ): groups that differ in lr alone step with the "
        "lr of whichever group computed that step number first, and a group added with `add_param_group` "
        "shares the buffer whatever its betas.  " + _AUTHORS_NOTE
    ),
    "pytorch_optimizer.RAdam": (
        "ρ_t ≥ `n_sma_threshold` (5), ε before bias correction, no update before rectification "
        "(`degenerated_to_sgd=False`), decoupled decay θ·(1 − αλ) only on the steps that move θ — the `authors` "
        "axes, in its own arithmetic (complex parameters as real views).  Three defects: L2 weight decay "
        "(`weight_decouple=False`) is silently dropped (`apply_weight_decay` is called with `grad=None` on the "
        "per-parameter path, and the foreach path decays only when decoupled); `maximize=True` negates `p.grad` "
        "in place (`grad.neg_()`, `torch._foreach_neg_`); the step counter is `group['step']`, advanced for the "
        "whole group on every step, so a parameter without a gradient still counts the step."
    ),
    "authors.RAdam": (
        "The `authors` profile: ρ_t ≥ 5, ε before bias correction, no update before rectification "
        "(`degenerated_to_sgd=False`), decay θ − (αλ)θ only on the steps that move θ.  `group['buffer']` caches "
        "N_sma and the step size per step number; both depend on β₁ and β₂ (lr is applied outside the cache, "
        "so lr never leaks).  The constructor gives a group its own buffer when its betas differ from the "
        "constructor's, so constructor groups never share a wrong entry; a group added with `add_param_group` "
        "gets the default buffer whatever its betas, and steps with the β-dependent rectification decision and "
        "step size of the group that first computed each step number.  " + _AUTHORS_NOTE
    ),
    "authors.PlainRAdam": (
        "The same update as `RAdam` without the cache (the `authors` profile), written with the deprecated "
        "`add_(scalar, tensor)` signatures (torch warns).  " + _AUTHORS_NOTE
    ),
}

_LOAD = {
    "timm.optim.RAdamLegacy": ("from radam_ref.conformance.adapters.third_party import load_timm_radam\n"
                               "CLS = load_timm_radam().RAdamLegacy"),
    "torch_optimizer.RAdam": "from torch_optimizer import RAdam as CLS",
    "pytorch_optimizer.RAdam": "from pytorch_optimizer import RAdam as CLS",
    "authors.RAdam": ("import os\nfrom radam_ref.conformance.adapters.third_party import load_file_module\n"
                      "CLS = load_file_module(os.environ['RADAM_REF_AUTHORS_FILE']).RAdam"),
    "authors.PlainRAdam": ("import os\nfrom radam_ref.conformance.adapters.third_party import load_file_module\n"
                           "CLS = load_file_module(os.environ['RADAM_REF_AUTHORS_FILE']).PlainRAdam"),
}

#: A short, plain-torch repro of each cause (CLS is the target's class).
SNIPPETS = {
    "precision/float32_update": """\
x = torch.tensor([1 / 3, -2 / 3], dtype=torch.float64)
opt = CLS([x], lr=0.1)
for _ in range(6):  # the 6th step is rectified for β₂ = 0.999
    x.grad = torch.tensor([0.5, 0.25], dtype=torch.float64)
    opt.step()
print(x.tolist())
print("every value a float32 number:", all(float(torch.tensor(v, dtype=torch.float32)) == v for v in x.tolist()))
""",
    "complex/imag_zeroed": """\
z = torch.tensor([1 + 2j, -0.5 + 0.25j], dtype=torch.complex128)
opt = CLS([z], lr=0.1)
for _ in range(6):
    z.grad = torch.tensor([0.5 + 0.5j, 0.25 - 0.125j], dtype=torch.complex128)
    opt.step()
print("imaginary parts:", z.imag.tolist())  # the spec moves both parts; these started at 2 and 0.25
""",
    "groups/shared_cache": """\
a, b = torch.tensor([1.0]), torch.tensor([1.0])
opt = CLS([{"params": [a], "lr": 1.0}, {"params": [b], "lr": 1e-3}])  # equal betas, lr alone differs
a.grad, b.grad = torch.tensor([1.0]), torch.tensor([1.0])
opt.step()
print("b:", b.item(), "(the spec: 1 - 1e-3 = 0.999; b took a's step of lr 1.0)")
""",
    "groups/added_group_shares_state": """\
a, b, c = torch.tensor([1.0]), torch.tensor([1.0]), torch.tensor([1.0])
opt = CLS([a], lr=0.1, betas=(0.9, 0.999))
alone = CLS([c], lr=0.1, betas=(0.5, 0.9))  # the added group, in an optimizer of its own
for t in range(1, 11):
    if t == 3:
        opt.add_param_group({"params": [b], "lr": 0.1, "betas": (0.5, 0.9)})
    a.grad = torch.tensor([1.0])
    if t >= 3:
        b.grad, c.grad = torch.tensor([1.0]), torch.tensor([1.0])
        alone.step()
    opt.step()
print("added group:", b.item(), " same group alone:", c.item())  # equal in the spec
""",
    "groups/step_per_group": """\
a, b, c = torch.tensor([1.0]), torch.tensor([1.0]), torch.tensor([1.0])
opt = CLS([a, b], lr=0.1, degenerated_to_sgd=True)
alone = CLS([c], lr=0.1, degenerated_to_sgd=True)  # b's gradients only
for t in range(1, 4):
    a.grad = torch.tensor([1.0])
    b.grad = None if t == 1 else torch.tensor([1.0])
    if t > 1:
        c.grad = torch.tensor([1.0])
        alone.step()
    opt.step()
print("b:", b.item(), " alone:", c.item())  # equal in the spec: b's counter starts at its first gradient
""",
    "weight_decay/ignored": """\
x = torch.tensor([1.0])
opt = CLS([x], lr=0.1, weight_decay=0.5, weight_decouple=False, degenerated_to_sgd=True)
x.grad = torch.tensor([0.0])
opt.step()
print("x:", x.item(), "(L2: the gradient becomes 0 + 0.5·x, so x moves to 0.95)")
""",
    "inputs/grad_modified_maximize": """\
x = torch.tensor([1.0])
opt = CLS([x], lr=0.1, maximize=True)
g = torch.tensor([0.5])
x.grad = g
opt.step()
print("p.grad after the step:", g.item())  # the step must not write into its gradient
""",
}

#: (name, kwargs, profile) of the detailed runs.
RUNS = (
    ("torch.optim.RAdam", {"foreach": False}, "torch"),
    ("torch.optim.RAdam", {"foreach": True}, "torch"),
    ("torch.optim.RAdam", {"foreach": False, "decoupled_weight_decay": True}, "torch_decoupled"),
    ("torch.optim.RAdam", {"foreach": False}, "paper"),
    ("optax.radam", {"x64": True}, "optax"),
    ("optax.radam", {}, "optax"),
    ("optax.radam", {"x64": True}, "paper"),
    ("optax.radam", {}, "paper"),
)

#: Mechanisms behind findings, keyed by (target name, check) — shown only when found.
EXPLANATIONS = {
    ("torch.optim.RAdam foreach=True", "eps_zero"): (
        "With `eps=0`, the foreach path computes `buffer = (sqrt(v) + eps) / (sqrt(1 - β₂ᵗ)·lr·rect/bc·(-1))` "
        "for every step, rectified or not; before rectification `rect = 0`, so an element whose "
        "gradients have all been 0 gets `0 / -0 = NaN`, and `param += exp_avg · NaN` turns it into NaN "
        "on the very first step — an SGD-momentum step, where the spec (and the `foreach=False` path) "
        "divides by nothing.  Minimal repro: `x = torch.tensor([0.5, 1.0]); "
        "opt = torch.optim.RAdam([x], lr=0.1, eps=0.0, foreach=True); x.grad = torch.tensor([0.0, 1.0]); "
        "opt.step()` gives `x = [nan, 0.9]` (`[0.5, 0.9]` with `foreach=False`)."
    ),
    ("optax.radam", "autodiff"): (
        "`scale_by_radam` evaluates both branches and selects with `jnp.where(ro >= threshold, …)`.  "
        "While ρ_t ∈ (2, 4) the rectified branch has `r = sqrt((ρ_t−4)(ρ_t−2)…) = NaN`; the forward "
        "value is masked, but the VJP of `where` multiplies the masked cotangent 0 by the branch's "
        "partial derivatives, and 0 · NaN = NaN.  So `jax.grad` through `optax.radam` is NaN as soon "
        "as a step with ρ_t ∈ (2, 4) is involved (t = 3 for β₂ = 0.9; t = 3–4 for β₂ = 0.999)."
    ),
    ("optax.radam", "complex"): (
        "optax treats a complex parameter as one coordinate: its second moment is |g|² "
        "(`update_moment_per_elem_norm`), one number per complex element.  The spec, like "
        "torch.optim.RAdam, defines a complex parameter as its real view (`view_as_real`): two "
        "independent coordinates with second moments Re(g)² and Im(g)².  The updates differ whenever "
        "both parts are non-zero.  A difference of convention, reported because the spec fixes one."
    ),
    ("optax.radam x64=False", "*"): (
        "Without x64, `scale_by_radam` computes its step scalars in float32: `b2 ** count` rounds β₂ "
        "to float32, while `ro_inf = 2/(1−b2) − 1` is evaluated from the exact β₂ in Python, and "
        "`ro = ro_inf − 2·t·β₂ᵗ/(1−β₂ᵗ)` then cancels (SPEC-NOTES).  The diagnosis reproduces the "
        "target exactly by the spec with step scalars computed this way.  Effects: r_t off by "
        "~1 % at the first rectified step for the default β₂ = 0.999, the first rectified step at "
        "t = 2 instead of 6 for β₂ = 0.9999 and at t = 1 for β₂ = 0.99999 (ρ_1 off by ~270).  The "
        "`arithmetic` check reports it once; the other checks look past it (their oracle computes the "
        "step scalars the same way).  With x64 this finding disappears."
    ),
}


def _versions() -> str:
    parts = [f"Python {platform.python_version()}"]
    for module in ("numpy", "torch", "jax", "optax", "hypothesis"):
        try:
            mod = __import__(module)
            parts.append(f"{module} {mod.__version__}")
        except ImportError:
            pass
    return ", ".join(parts)


def _verdict_cell(report: Report, check: str) -> str:
    r = report.result(check)
    if r is None:
        return ""
    return SYMBOLS[r.verdict].replace("✗ FAIL", "✗ **FAIL**")


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def build_results_page(reports: list, survey: list, *, max_examples: int, seed: int, horizon: int,
                       third_party: list | None = None) -> str:
    lines = [
        "# Conformance results",
        "",
        "Generated by `radam-ref conformance --results-page docs/conformance-results.md` "
        f"(seed {seed}, {max_examples} Hypothesis examples per drawn property, long horizon {horizon} "
        "steps); do not edit by hand.",
        "",
        f"Versions: {_versions()}.",
        "",
        "Verdicts: ✓ pass · ≈ acceptable (inside the tolerance model's branch window or the ε = 0 policy) · "
        "✗ FAIL (a deviation beyond tolerance, with repro below) · – not supported.  Tolerances and their "
        "rationale: `radam_ref.conformance.tolerance` and [the conformance guide](conformance.md).",
        "",
        "## torch.optim.RAdam and optax.radam",
        "",
    ]
    header = "| check | " + " | ".join(f"{r.target}<br>vs `{r.profile}`" for r in reports) + " |"
    lines += [header, "|---|" + "---|" * len(reports)]
    for check in CHECKS:
        lines.append(f"| `{check}` | " + " | ".join(_verdict_cell(r, check) for r in reports) + " |")
    lines.append("| **verdict** | " + " | ".join(f"**{r.verdict}**" for r in reports) + " |")
    lines += ["", "### Fingerprints", "",
              "Found by probing with designed inputs (`radam_ref.conformance.fingerprint`); "
              "\"vs paper\" lists the axes on which the target is not the paper's Algorithm 2.", ""]
    seen = set()
    for r in reports:
        key = r.target
        if key in seen:
            continue
        seen.add(key)
        lines.append(f"- **{r.target}**: {_md_escape(fingerprint_line(r.fingerprint))}")
        if r.fingerprint is not None and r.fingerprint.threshold_interval:
            lo, hi = r.fingerprint.threshold_interval
            lines.append(f"  (threshold ∈ [{lo:.6g}, {hi:.6g}) from the first rectified steps)")
    lines += ["", "## Findings against the claimed profile", ""]
    own = [r for r in reports if r.profile == ("torch_decoupled" if r.kwargs.get("decoupled_weight_decay")
                                               else ("torch" if r.name.startswith("torch") else "optax"))]
    any_finding = False
    for r in own:
        fails = [res for res in r.results if res.verdict == "fail"]
        if not fails:
            continue
        any_finding = True
        lines += [f"### {r.target} (profile `{r.profile}`)", ""]
        general = EXPLANATIONS.get((r.target, "*"))
        if general:
            lines += [general, ""]
        for res in fails:
            lines.append(f"#### `{res.check}` — {CHECKS[res.check].title}")
            lines.append("")
            explanation = EXPLANATIONS.get((r.target, res.check)) or EXPLANATIONS.get((r.name, res.check))
            if explanation:
                lines += [explanation, ""]
            lines.append(f"- {_md_escape(res.summary)}")
            m = res.mismatch
            if m is not None:
                lines.append(f"- first failing step {m.step}, `params[{m.group}][{m.param}]`, element "
                             f"{list(m.index)}: expected `{m.expected!r}`, got `{m.got!r}`, "
                             f"tolerance `{m.tolerance:.3g}`")
            if res.axis:
                lines.append(f"- most likely axis: {_md_escape(res.axis)}")
            if res.repro:
                lines += ["", "```python", res.repro, "```"]
            lines.append("")
    if not any_finding:
        lines += ["None.", ""]
    if third_party:
        lines += third_party_section(third_party)
    lines += ["## Against the paper profile", "",
              "Checked against `paper`, torch.optim.RAdam and optax.radam fail by design: they are other "
              "variants.  The first failing check and its diagnosed axis:", ""]
    for r in reports:
        if r.profile != "paper":
            continue
        first = next((res for res in r.results if res.verdict == "fail"), None)
        what = f"`{first.check}` — {_md_escape(first.axis or first.summary)}" if first else "no failure"
        lines.append(f"- **{r.target}**: {r.verdict}; {what}")
    lines += ["", "## Every built-in target (`radam-ref conformance --all`)", "",
              "| target | profile | verdict | ✓/≈/✗/– | failing checks | fingerprint |", "|---|---|---|---|---|---|"]
    for rep in survey:
        if not rep.installed:
            lines.append(f"| {rep.target} | | not installed | | {_md_escape(rep.message)} | |")
            continue
        counts = {v: sum(x.verdict == v for x in rep.results) for v in SYMBOLS}
        tally = f"{counts['pass']}/{counts['acceptable']}/{counts['fail'] + counts['error']}/{counts['not supported']}"
        failing = ", ".join(f"`{x.check}`" for x in rep.results if x.verdict in ("fail", "error")) or "—"
        lines.append(f"| {rep.target} | {rep.profile} | {rep.verdict} | {tally} | {failing} | "
                     f"{_md_escape(fingerprint_line(rep.fingerprint))} |")
    lines.append("")
    return "\n".join(lines)


def _run_snippet(source: str) -> tuple[str, str | None]:
    """Run a repro snippet; (its standard output, None) or (output, the error)."""
    import contextlib
    import io
    import warnings

    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(source, "<repro>", "exec"), {"__name__": "__repro__"})  # noqa: S102 - our own snippet
    except Exception as exc:  # noqa: BLE001 - reported on the page
        return out.getvalue(), f"{type(exc).__name__}: {exc}"
    return out.getvalue(), None


def third_party_section(reports: list) -> list:
    """Markdown lines of the third-party section (see the module docstring)."""
    lines = ["## Third-party RAdams, with no `--profile`", "",
             "Each target is checked with `radam-ref conformance TARGET` and nothing else: the suite fingerprints "
             "it and checks it against the profile it follows.  Every finding names its cause from the catalogue "
             "(`radam_ref.conformance.causes`, [the diagnosis table](conformance.md#diagnosis)); each comes with "
             "a short plain-torch repro that the page's generator ran (its output is shown).", "",
             "| target | profile checked, and why | verdict | findings (cause) |", "|---|---|---|---|"]
    for rep in reports:
        if not rep.installed:
            lines.append(f"| {rep.target} | | not installed | {_md_escape(rep.message)} |")
            continue
        findings = [f for r in rep.results for f in r.findings if f.severity == "fail"]
        cells = "<br>".join(f"`{f.id}` {_md_escape(f.cause_text)} (`{f.cause}`)" for f in findings) or "—"
        why = rep.message.split("\n")[0]
        lines.append(f"| {rep.target} | {_md_escape(why)} | **{rep.verdict}** | {cells} |")
    lines.append("")
    for rep in reports:
        if not rep.installed:
            continue
        lines += [f"### {rep.target}", ""]
        reading = READING.get(rep.name)
        if reading:
            lines += [f"**Reading the source.** {reading}", ""]
        lines += [f"**Verdict: {rep.verdict}.** {_md_escape(rep.message.splitlines()[0] if rep.message else '')}", ""]
        findings = [f for r in rep.results for f in r.findings if f.severity == "fail"]
        done = set()
        for f in findings:
            what = f.title if f.cause_text in f.title else f"{f.title} — {f.cause_text}"
            lines.append(f"- `{f.id}` — {_md_escape(what)} (cause `{f.cause}`)")
        lines.append("")
        for f in findings:
            snippet = SNIPPETS.get(f.cause)
            load = _LOAD.get(rep.name)
            if snippet is None or load is None or f.cause in done:
                continue
            done.add(f.cause)
            source = f"import torch\n{load}\n{snippet}"
            output, error = _run_snippet(source)
            info = "python" if not rep.name.startswith("authors.") else \
                "python no-run (needs the authors' radam.py: set RADAM_REF_AUTHORS_FILE)"
            lines += [f"Repro of `{f.cause}`" + (" (**did not reproduce**: " + error + ")" if error else "") + ":",
                      "", f"```{info}", source.rstrip(), "```", ""]
            if output and not error:
                lines += ["```text output", output.rstrip(), "```", ""]
        if not findings:
            lines += ["No finding.", ""]
    return lines


def write_results_page(path: str, *, max_examples: int, seed: int, horizon: int) -> str:
    reports = []
    for name, kwargs, profile in RUNS:
        try:
            reports.append(run_conformance(name, kwargs, profile=profile, max_examples=max_examples, seed=seed,
                                           horizon=horizon))
        except TargetUnavailable as exc:
            reports.append(Report(target_label(name, kwargs), profile, "", installed=False, message=str(exc),
                                  name=name, kwargs=kwargs))
    reports = [r for r in reports if r.installed]
    survey = []
    for name, kwargs in ALL_TARGETS:
        cached = next((r for r in reports if r.name == name and r.kwargs == kwargs
                       and r.profile in ("torch", "optax")), None)
        if cached is not None:
            survey.append(cached)
            continue
        try:
            survey.append(run_conformance(name, kwargs, max_examples=max_examples, seed=seed, horizon=horizon))
        except TargetUnavailable as exc:
            survey.append(Report(target_label(name, kwargs), "", "", installed=False, message=str(exc),
                                 name=name, kwargs=kwargs))
    third = []
    for name, kwargs in THIRD_PARTY:
        cached = next((r for r in survey if r.name == name and r.kwargs == kwargs), None)
        if cached is not None:  # the survey ran it with no --profile too
            third.append(cached)
            continue
        try:
            third.append(run_conformance(name, kwargs, max_examples=max_examples, seed=seed, horizon=horizon))
        except TargetUnavailable as exc:
            third.append(Report(target_label(name, kwargs), "", "", installed=False, message=str(exc),
                                name=name, kwargs=kwargs))
    text = build_results_page(reports, survey, max_examples=max_examples, seed=seed, horizon=horizon,
                              third_party=third)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return text
