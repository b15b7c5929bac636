"""Tests of radam_ref.paper: Figure 8/9 data, the Adam controls of §3.1, the
learning-rate experiment, the claims logic and the ``radam-ref paper`` command.

Oracles: mpmath (eq. 4 at 50 digits), explicit non-recursive sums (eq. 1) over the
same random draws, torch.optim.Adam, hand-written one-step formulas, and
synthetic results whose verdicts are known.
"""

from __future__ import annotations

import json
import math
import os

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import radam_ref

torch = pytest.importorskip("torch")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def mp_variance(rho):
    with mpmath.workdps(50):
        r = mpmath.mpf(rho)
        return float(r / (r - 2) - r / 2 * (mpmath.gamma((r - 1) / 2) / mpmath.gamma(r / 2)) ** 2)


# --------------------------------------------------------------------------- #
# Figure 8 and the rectification figure
# --------------------------------------------------------------------------- #


def test_figure8_data_against_mpmath():
    from radam_ref.paper import figure8

    data = figure8.compute(500)
    assert data.rho[0] == 5 and data.rho[-1] == 500 and data.rho.size == 496
    for index in (0, 1, 22, 95, 495):
        rho = float(data.rho[index])
        exact = mp_variance(rho)
        approx = rho / (2 * (rho - 2) * (rho - 4))
        assert abs(data.exact[index] - exact) <= 1e-14 * exact
        assert abs(data.approx[index] - approx) <= 1e-14 * approx
        assert abs(data.difference[index] - abs(exact - approx)) <= 1e-12 * exact
    summary = data.summary()
    # Independent scan: smallest integer ρ from which |eq6 − eq4| < eq4/10 up to 500.
    relative = [abs(r / (2 * (r - 2) * (r - 4)) - mp_variance(r)) / mp_variance(r) for r in range(5, 501)]
    last_bad = max(i for i, x in enumerate(relative) if x >= 0.1)
    assert summary["rho_order_of_magnitude_from"] == 5 + last_bad + 1
    assert summary["max_relative_difference"] == pytest.approx(max(relative), rel=1e-12)
    assert summary["monotone_decreasing"] is True


def test_figure8_rejects_small_range():
    from radam_ref.paper import figure8

    with pytest.raises(ValueError, match="rho_max.*5"):
        figure8.compute(5)


def test_rectification_data():
    from radam_ref.paper import rectification

    data = rectification.compute(beta2=0.999, t_max=400, warmup_steps=100)
    assert int(data.steps[0]) == 3
    for t in (3, 4, 5, 6, 50, 400):
        i = t - 3
        sched = radam_ref.schedule(t, beta2=0.999)
        if sched.rectified:
            assert data.algorithm2[i] == sched.r_t
            assert abs(data.from_eq6[i] - sched.r_t) <= 1e-14
        else:
            assert math.isnan(data.algorithm2[i]) and math.isnan(data.from_eq6[i])
        expected = math.sqrt(mp_variance(sched.rho_inf) / mp_variance(sched.rho_t))
        assert abs(data.exact[i] - expected) <= 1e-13 * expected
        assert data.warmup[i] == min(t, 100) / 100
    summary = data.summary()
    assert summary["first_rectified_step"] == 5
    assert summary["max_relative_gap_eq6_ratio_vs_algorithm2"] < 1e-14


# --------------------------------------------------------------------------- #
# Figure 9 simulation
# --------------------------------------------------------------------------- #


@settings(max_examples=5)
@given(
    mus=st.lists(st.sampled_from([0.0, 0.3, -1.5, 4.0]), min_size=1, max_size=3),
    trajectories=st.integers(2, 40),
    iterations=st.integers(5, 30),
    seed=st.integers(0, 2**31),
)
def test_simulation_streaming_equals_explicit_sums(mus, trajectories, iterations, seed):
    """The streamed recursion equals eq. 1's explicit weighted sums over the same draws."""
    from radam_ref.paper import simulation

    beta2 = 0.999
    result = simulation.simulate(mus, beta2=beta2, trajectories=trajectories,
                                 iterations=iterations, seed=seed)
    rng = np.random.default_rng(seed)
    draws = np.stack([rng.standard_normal((len(mus), trajectories)) for _ in range(iterations)])
    grads = draws + np.asarray(mus)[None, :, None]
    for k, t in enumerate(range(5, iterations + 1)):
        weights = beta2 ** np.arange(t - 1, -1, -1.0)  # β₂^{t−i}, i = 1..t
        weighted = (1 - beta2) * np.tensordot(weights, grads[:t] ** 2, axes=1)
        psi = np.sqrt((1 - beta2**t) / weighted)  # eq. 1
        expected = psi.var(axis=1, ddof=1)
        np.testing.assert_allclose(result.var_adaptive[:, k], expected, rtol=1e-10)
        r_t = radam_ref.schedule(t, beta2=beta2).r_t
        np.testing.assert_allclose(result.var_rectified[:, k], r_t**2 * expected, rtol=1e-10)
    assert list(result.steps) == list(range(5, iterations + 1))


@settings(max_examples=4)
@given(seed=st.integers(0, 2**31))
def test_simulation_matches_scaled_inverse_chi_square_model(seed):
    """μ = 0, σ = 1: Var[1/v̂_t] ≈ eq. 4 at ρ_t (§4.1's SMA model) within sampling error."""
    from radam_ref.paper import simulation

    result = simulation.simulate((0.0,), trajectories=20000, iterations=60, seed=seed)
    for k, t in enumerate(result.steps):
        if t >= 20:
            model = mp_variance(radam_ref.schedule(int(t)).rho_t)
            assert abs(result.var_adaptive[0, k] / model - 1) < 0.08, (t, seed)


def test_simulation_torch_backend_agrees_statistically():
    from radam_ref.paper import simulation

    result = simulation.simulate((0.0, 1.0), trajectories=20000, iterations=40, backend="torch", seed=3)
    reference = simulation.simulate((0.0, 1.0), trajectories=20000, iterations=40, seed=3)
    assert isinstance(result.var_adaptive, np.ndarray) and result.var_adaptive.shape == (2, 36)
    ratio = result.var_adaptive[:, 15:] / reference.var_adaptive[:, 15:]
    assert np.all(np.abs(ratio - 1) < 0.1)


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        (dict(first_step=4), ValueError, ["first_step", "4"]),
        (dict(first_step=50, iterations=40), ValueError, ["first_step", "50"]),
        (dict(trajectories=1), ValueError, ["trajectories", "1"]),
        (dict(trajectories=2.5), TypeError, ["trajectories", "2.5"]),
        (dict(backend="tensorflow"), ValueError, ["backend", "tensorflow"]),
        (dict(mus=(0.0, float("nan"))), ValueError, ["mus", "nan"]),
        (dict(device="cuda"), ValueError, ["device", "cuda"]),
    ],
)
def test_simulation_bad_input(kwargs, exc, words):
    from radam_ref.paper import simulation

    args = dict(trajectories=4, iterations=10)
    args.update(kwargs)
    with pytest.raises(exc) as info:
        simulation.simulate(**args)
    for word in words:
        assert word in str(info.value)


# --------------------------------------------------------------------------- #
# §3.1 Adam controls
# --------------------------------------------------------------------------- #


def _quadratic_grads(steps, shape, seed):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen, dtype=torch.float64) for _ in range(steps)]


@settings(max_examples=10)
@given(
    lr=st.floats(1e-4, 0.5),
    beta1=st.floats(0.0, 0.99),
    beta2=st.floats(0.5, 0.9999),
    steps=st.integers(1, 12),
    seed=st.integers(0, 10**6),
)
def test_paper_adam_without_eps_equals_torch_adam(lr, beta1, beta2, steps, seed):
    """With ε = 0 the ε placement is moot: PaperAdam(k = 0) is torch's Adam."""
    from radam_ref.paper.adam_variants import PaperAdam

    start = torch.linspace(-1, 1, 7, dtype=torch.float64)
    ours = start.clone().requires_grad_(True)
    theirs = start.clone().requires_grad_(True)
    opt_ours = PaperAdam([ours], lr=lr, betas=(beta1, beta2), eps=0.0)
    opt_theirs = torch.optim.Adam([theirs], lr=lr, betas=(beta1, beta2), eps=0.0)
    for grad in _quadratic_grads(steps, (7,), seed):
        ours.grad, theirs.grad = grad.clone(), grad.clone()
        opt_ours.step()
        opt_theirs.step()
    # torch.optim.Adam computes 1 − β₂ᵗ naively: β₂ᵗ carries ~1 ulp, so the bias
    # correction is off by up to ~2.2e-16/(1 − β₂) relative, and each step's size
    # (≤ lr·|m̂|/sqrt(v̂) ≈ lr) by half that.  Allow it per step, plus rounding.
    scalar_error = steps * lr * 2.2e-16 / (1.0 - beta2)
    torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-12,
                               atol=1e-14 + 4 * scalar_error)


def test_paper_adam_eps_before_bias_correction():
    """One step by hand: θ₁ = θ₀ − α g sqrt(1−β₂)/(sqrt((1−β₂)g²) + ε)  (§2's ψ̂)."""
    from radam_ref.paper.adam_variants import PaperAdam

    g, lr, eps, b2 = 0.003, 0.1, 1e-4, 0.999
    p = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    opt = PaperAdam([p], lr=lr, eps=eps)
    p.grad = torch.tensor([g], dtype=torch.float64)
    opt.step()
    expected = 1.0 - lr * g * math.sqrt(1 - b2) / (math.sqrt((1 - b2) * g * g) + eps)
    assert float(p.detach()) == pytest.approx(expected, rel=1e-15)
    # torch's Adam adds ε after bias correction and so takes a different step.
    q = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    torch_opt = torch.optim.Adam([q], lr=lr, eps=eps)
    q.grad = torch.tensor([g], dtype=torch.float64)
    torch_opt.step()
    assert abs(float(q.detach()) - expected) > 1e-4


def test_adam_k_freezes_params_and_first_moment():
    from radam_ref.paper.adam_variants import PaperAdam

    k, lr, b1, b2, eps = 5, 0.01, 0.9, 0.999, 1e-8
    p = torch.tensor([0.5, -2.0], dtype=torch.float64, requires_grad=True)
    opt = PaperAdam([p], lr=lr, betas=(b1, b2), eps=eps, v_only_steps=k)
    grads = _quadratic_grads(k + 2, (2,), 7)
    for grad in grads[:k]:
        p.grad = grad.clone()
        opt.step()
        assert p.tolist() == [0.5, -2.0]
        assert opt.state[p]["exp_avg"].tolist() == [0.0, 0.0]
    g = np.array([x.numpy() for x in grads])
    v_k = sum((1 - b2) * b2 ** (k - i) * g[i - 1] ** 2 for i in range(1, k + 1))
    np.testing.assert_allclose(opt.state[p]["exp_avg_sq"].numpy(), v_k, rtol=1e-14)
    p.grad = grads[k].clone()
    opt.step()
    v = b2 * v_k + (1 - b2) * g[k] ** 2
    # First regular step: m̂ = g_{k+1}; v counts k + 1 samples.
    expected = np.array([0.5, -2.0]) - lr * g[k] * math.sqrt(1 - b2 ** (k + 1)) / (np.sqrt(v) + eps)
    np.testing.assert_allclose(p.detach().numpy(), expected, rtol=1e-14)


@pytest.mark.parametrize(
    "kwargs, word",
    [(dict(lr=0.0), "lr"), (dict(lr=float("nan")), "lr"), (dict(betas=(0.9, 1.0)), "betas[1]"),
     (dict(betas=(0.9,)), "betas"), (dict(eps=-1.0), "eps"), (dict(v_only_steps=-1), "v_only_steps"),
     (dict(v_only_steps=1.5), "v_only_steps")],
)
def test_paper_adam_bad_input(kwargs, word):
    from radam_ref.paper.adam_variants import PaperAdam

    with pytest.raises(ValueError) as info:
        PaperAdam([torch.zeros(2, requires_grad=True)], **kwargs)
    assert word in str(info.value)


# --------------------------------------------------------------------------- #
# The learning-rate experiment
# --------------------------------------------------------------------------- #


def test_make_optimizer_uses_the_project_backend_for_radam():
    from radam_ref.backends.torch import RAdam

    from radam_ref.paper import lr_experiment
    from radam_ref.paper.adam_variants import PaperAdam

    params = [torch.zeros(3, requires_grad=True)]
    assert isinstance(lr_experiment.make_optimizer("RAdam", params, 0.01), RAdam)
    assert isinstance(lr_experiment.make_optimizer("SGD", params, 0.01), torch.optim.SGD)
    adam_k = lr_experiment.make_optimizer("Adam-2k", params, 0.01, adam_k=7)
    assert isinstance(adam_k, PaperAdam) and adam_k.defaults["v_only_steps"] == 7
    assert lr_experiment.make_optimizer("Adam-eps", params, 0.01).defaults["eps"] == 1e-4
    with pytest.raises(ValueError, match="optimizer.*'Adagrad'"):
        lr_experiment.make_optimizer("Adagrad", params, 0.01)


def test_lr_experiment_small_run_is_deterministic():
    from radam_ref.paper import lr_experiment

    kwargs = dict(learning_rates=(0.03, 0.003), seeds=(0, 1), epochs=2, hidden=8, batch=64,
                  warmup_steps=3, adam_k=4, train_limit=200, optimizers=("Adam-warmup", "RAdam"))
    first = lr_experiment.run(**kwargs)
    second = lr_experiment.run(**kwargs)
    assert first.curves == second.curves
    assert first.first_steps == second.first_steps
    assert all(len(v) == 2 for v in first.first_steps.values())
    assert first.train_size == 200 and first.test_size == 540
    for key, runs in first.curves.items():
        assert len(runs) == 2 and all(len(c) == 2 for c in runs)
        assert all(0.0 <= a <= 1.0 for c in runs for a in c)
    table = first.table_markdown()
    assert table.splitlines()[0] == "| optimizer | lr = 0.03 | lr = 0.003 | spread |"
    assert len(table.splitlines()) == 4
    assert first.table_csv().count("\n") == 5


def test_first_update_sizes():
    """Adam's first update moves the largest weight by α (|m̂/(√v̂)| = 1); RAdam's first
    update is SGD with bias-corrected momentum, α·g — the same as SGD-momentum's."""
    from radam_ref.paper import lr_experiment

    data = lr_experiment.load_data(train_limit=128)
    common = dict(epochs=1, hidden=8, batch=32, warmup_steps=10, adam_k=3, track_steps=1)
    _, _, adam = lr_experiment.train_one("Adam", 0.01, 4, data, **common)
    _, _, sgd = lr_experiment.train_one("SGD", 0.01, 4, data, **common)
    _, _, radam = lr_experiment.train_one("RAdam", 0.01, 4, data, **common)
    _, _, warm = lr_experiment.train_one("Adam-warmup", 0.01, 4, data, **common)
    assert len(adam) == 1 and adam[0] == pytest.approx(1.0, rel=1e-3)
    assert warm[0] == pytest.approx(0.1, rel=1e-3)  # min(1, 10)/10
    assert radam[0] == pytest.approx(sgd[0], rel=1e-4) and radam[0] < 1.0


def test_digits_split_is_fixed_and_stratified():
    from radam_ref.paper import lr_experiment

    (x_train, y_train), (x_test, y_test) = lr_experiment.load_data()
    assert x_train.shape == (1257, 64) and x_test.shape == (540, 64)
    assert float(x_train.max()) == 1.0 and float(x_train.min()) == 0.0
    from sklearn.datasets import load_digits

    per_class = np.bincount(load_digits().target, minlength=10)
    test_counts = torch.bincount(y_test, minlength=10).numpy()
    assert np.all(np.abs(test_counts - 0.3 * per_class) <= 1)


# --------------------------------------------------------------------------- #
# Claims logic on synthetic results
# --------------------------------------------------------------------------- #


def _synthetic_lr_result(finals):
    from radam_ref.paper.lr_experiment import LRExperimentResult

    lrs = (0.1, 0.01)
    curves = {(name, lr): [[0.1, a] for a in accs] for (name, lr), accs in finals.items()}
    first_steps = {key: [1.0, 1.0] for key in finals}
    return LRExperimentResult(
        learning_rates=lrs, optimizers=("SGD", "Adam", "Adam-warmup", "Adam-2k", "Adam-eps", "RAdam"),
        seeds=(0, 1), epochs=2, hidden=8, batch=8, warmup_steps=2, adam_k=2, train_size=10,
        test_size=10, curves=curves, diverged={}, first_steps=first_steps,
    )


def test_lr_claims_verdicts():
    from radam_ref.paper import claims

    good = {  # RAdam flat; Adam, SGD, warmup sensitive; controls beat Adam; eps worst of three
        ("SGD", 0.1): [0.9, 0.9], ("SGD", 0.01): [0.6, 0.6],
        ("Adam", 0.1): [0.3, 0.5], ("Adam", 0.01): [0.9, 0.9],
        ("Adam-warmup", 0.1): [0.8, 0.8], ("Adam-warmup", 0.01): [0.95, 0.95],
        ("Adam-2k", 0.1): [0.85, 0.85], ("Adam-2k", 0.01): [0.9, 0.9],
        ("Adam-eps", 0.1): [0.6, 0.6], ("Adam-eps", 0.01): [0.7, 0.7],
        ("RAdam", 0.1): [0.9, 0.92], ("RAdam", 0.01): [0.91, 0.91],
    }
    result = _synthetic_lr_result(good)
    assert result.final_stats()[("Adam", 0.1)] == pytest.approx((0.4, math.sqrt(0.02), 2))
    assert result.spread()["RAdam"] == pytest.approx(0.0)
    rows = {c.key: c for c in claims.lr_claims(result)}
    assert {k: c.verdict for k, c in rows.items()} == {
        "lr_robust_fig6": "agrees", "lr_robust_fig7": "agrees",
        "adam_controls_fix": "agrees", "adam_eps_worse": "agrees",
    }
    assert "0.1" in rows["adam_controls_fix"].reproduced
    bad = dict(good)
    bad[("RAdam", 0.1)] = [0.2, 0.2]
    bad[("Adam-2k", 0.1)] = [0.1, 0.1]
    bad[("Adam-eps", 0.1)] = [0.99, 0.99]
    bad[("Adam-eps", 0.01)] = [0.99, 0.99]
    rows = {c.key: c.verdict for c in claims.lr_claims(_synthetic_lr_result(bad))}
    assert rows == {"lr_robust_fig6": "disagrees", "lr_robust_fig7": "disagrees",
                    "adam_controls_fix": "disagrees", "adam_eps_worse": "disagrees"}


def test_simulation_and_figure8_claims_verdicts():
    from radam_ref.paper import claims

    row = lambda first_over_last, raw, flat: {  # noqa: E731
        "mu": 0.0, "adaptive_first_over_last": first_over_last,
        "adaptive_max_over_min": raw, "rectified_max_over_min": flat,
    }
    summary = {"first_step": 5, "per_mu": [row(500, 600, 3), row(300, 400, 8)],
               "mu0_sim_vs_eq4": {5: (1.1, 1.0), 100: (0.9, 1.0)}}
    verdicts = [c.verdict for c in claims.simulation_claims(summary)]
    assert verdicts == ["agrees", "agrees", "agrees"]
    summary = {"first_step": 5, "per_mu": [row(5, 600, 3), row(300, 40, 8)],
               "mu0_sim_vs_eq4": {5: (1.5, 1.0)}}
    verdicts = [c.verdict for c in claims.simulation_claims(summary)]
    assert verdicts == ["disagrees", "disagrees", "disagrees"]
    base = {"max_relative_difference": 2.3, "approx_at_5": 0.83, "exact_at_5": 0.25,
            "rho_order_of_magnitude_from": 27.0, "relative_difference_at_max_rho": 0.0045,
            "rho_max": 500.0}
    assert claims.figure8_claims(base)[0].verdict == "partly"
    assert claims.figure8_claims(dict(base, max_relative_difference=0.05))[0].verdict == "agrees"
    assert claims.figure8_claims(dict(base, rho_order_of_magnitude_from=None))[0].verdict == "disagrees"


def test_theory_claims_agree():
    from radam_ref.paper import claims

    rows = claims.theory_claims(grid_points=2001)
    assert [c.verdict for c in rows] == ["agrees"] * 4
    assert rows[0].reproduced.startswith("250.1×")


# --------------------------------------------------------------------------- #
# The command
# --------------------------------------------------------------------------- #


def _run(argv):
    from radam_ref.cli import main

    return main(argv)


def test_paper_command_tiny(tmp_path):
    out = tmp_path / "paper"
    assert _run(["paper", "--out", str(out), "--size", "tiny"]) == 0
    report = (out / "report.md").read_text(encoding="utf-8")
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    figures = sorted(os.listdir(out / "figures"))
    assert figures == ["figure1_transformer_warmup.png", "figure1_transformer_warmup_beta2_0.999.png",
                       "figure2_gradient_histograms.png", "figure8_variance.png", "figure9_simulation.png",
                       "lr_robustness_digits.png", "rectification_vs_warmup.png"]
    for name in figures:
        blob = (out / "figures" / name).read_bytes()
        assert blob.startswith(PNG_MAGIC) and len(blob) < 200_000
        assert f"](figures/{name})" in report
    claims = results["claims"]
    assert len(claims) == 25
    # The digits rows keep their numbers (12–13); the Transformer rows follow (14–19), then
    # the same six at the supplementary β₂ = 0.999 (20–25).
    transformer_keys = ["tf_no_warmup_fails", "tf_radam_no_warmup", "tf_gradient_distortion",
                        "tf_controls_no_distortion", "tf_controls_fix", "tf_adam_eps_worse"]
    assert [c["key"] for c in claims[11:]] == (
        ["adam_controls_fix", "adam_eps_worse"] + transformer_keys
        + [k + "_beta2_0.999" for k in transformer_keys])
    assert all(c["section"].endswith("(β₂ = 0.999)") and c["reproduced"].startswith("β₂ = 0.999, ")
               for c in claims[19:])
    table = [line for line in report.splitlines() if line.startswith("| ") and "**" in line]
    assert len(table) == 25
    for claim, line in zip(claims, table):
        assert f"**{claim['verdict']}**" in line and claim["section"] in line
        assert claim["verdict"] in ("agrees", "disagrees", "partly")
    verdicts = {c["key"]: c["verdict"] for c in claims}
    assert verdicts["variance_5_vs_500"] == "agrees" and verdicts["figure8_overlap"] == "partly"
    assert "v̂ is the square root of the bias-corrected second moment" in report
    assert (out / "tables" / "lr_final_accuracy.csv").read_text().startswith("optimizer,lr,")
    assert (out / "tables" / "transformer_final_loss.csv").read_text().startswith("optimizer,lr,seed,")
    assert "## Transformers without warmup (Figures 1–3, §3.1)" in report
    transformer = results["transformer"]
    assert transformer["settings"]["layers"] == 2 and transformer["claim_lr"] == 0.003
    assert len(transformer["train_loss"]["RAdam lr=0.003"][0]) == transformer["settings"]["steps"]
    supplement = results["transformer_supplements"]["0.999"]
    assert supplement["settings"] == dict(transformer["settings"], beta2=0.999)
    assert sorted(supplement["train_loss"]) == sorted(f"{n} lr=0.003" for n in (
        "Adam", "Adam-warmup", "RAdam", "Adam-2k", "Adam-eps"))
    assert "### Supplement: β₂ = 0.999, lr = 0.003" in report
    assert "rows 20–25 of the claims table" in report
    assert (out / "tables" / "transformer_final_loss_beta2_0.999.csv").read_text().startswith(
        "optimizer,lr,seed,")
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".radam-paper-")]


def test_paper_command_only_and_rerun_into_existing_folder(tmp_path):
    out = tmp_path / "p"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert _run(["paper", "--out", str(out), "--only", "figure8"]) == 0
    assert sorted(os.listdir(out / "figures")) == ["figure8_variance.png"]
    assert (out / "keep.txt").read_text() == "x"
    results = json.loads((out / "results.json").read_text())
    assert [c["key"] for c in results["claims"]][-1] == "figure8_overlap"


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--size", "tiny", "--full"], ["--full", "tiny"]),
        (["--only", "figure8,figure10"], ["--only", "figure10"]),
        (["--threads", "0"], ["--threads", "0"]),
        (["--workers", "0"], ["--workers", "0"]),
        (["--seed", "-1"], ["--seed", "-1"]),
    ],
)
def test_paper_command_bad_arguments(tmp_path, capsys, extra, words):
    out = tmp_path / "never"
    assert _run(["paper", "--out", str(out)] + extra) == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err
    assert not out.exists()


def test_paper_command_out_is_a_file(tmp_path, capsys):
    target = tmp_path / "file.md"
    target.write_text("mine")
    assert _run(["paper", "--out", str(target), "--only", "figure8"]) == 2
    assert "--out" in capsys.readouterr().err and target.read_text() == "mine"


def test_paper_command_failure_writes_nothing(tmp_path, monkeypatch):
    from radam_ref.paper import simulation

    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(simulation, "simulate", broken)
    out = tmp_path / "p"
    with pytest.raises(RuntimeError, match="simulated failure"):
        _run(["paper", "--out", str(out), "--size", "tiny", "--only", "figure8,simulation"])
    assert not out.exists()
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- #
# Transformers without warmup (Figures 1–3): corpus, model, runs, claims
# --------------------------------------------------------------------------- #


def _tiny_settings(**changes):
    from radam_ref.paper.warmup_experiment import WarmupSettings

    base = dict(layers=2, width=16, heads=2, context=8, batch=4, steps=6, warmup_steps=3,
                adam_k=2, beta2=0.999, eval_every=3, eval_windows=6, hist_steps=4, max_chars=5000)
    base.update(changes)
    return WarmupSettings(**base)


def test_corpus_is_the_stdlib_docstrings_split_90_10():
    import ast
    import sysconfig

    from radam_ref.paper.text_corpus import load_corpus

    corpus = load_corpus()
    assert load_corpus() is corpus  # cached
    text = "".join(corpus.vocabulary[i] for i in torch.cat([corpus.train, corpus.valid]).tolist())
    assert list(corpus.vocabulary) == sorted(set(corpus.vocabulary)) == sorted(set(text))
    assert all(c == "\n" or 32 <= ord(c) < 127 for c in corpus.vocabulary)
    assert corpus.valid.numel() == pytest.approx(0.1 * len(text), abs=1)
    # Independent reading of one module: its docstrings, in order, inside the text.
    path = os.path.join(sysconfig.get_paths()["stdlib"], "textwrap.py")
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    doc = ast.get_docstring(tree, clean=True)
    assert doc.startswith("Text wrapping") and doc in text
    wrapper = ast.get_docstring(next(n for n in tree.body if isinstance(n, ast.ClassDef)), clean=True)
    assert text.index(doc) < text.index(wrapper)
    short = load_corpus(5000)
    assert short.train.numel() + short.valid.numel() == 5000
    assert "".join(short.vocabulary[i] for i in short.train.tolist()) == text[:4500][:short.train.numel()]


@pytest.mark.parametrize("bad", [999, 2.5, True, "x"])
def test_corpus_bad_max_chars(bad):
    from radam_ref.paper.text_corpus import load_corpus

    with pytest.raises(ValueError, match="max_chars"):
        load_corpus(bad)


def test_sinusoidal_positions_formula():
    from radam_ref.paper.transformer import sinusoidal_positions

    table = sinusoidal_positions(7, 6).numpy()
    for p in range(7):
        for i in range(3):
            angle = p / 10000 ** (2 * i / 6)
            assert table[p, 2 * i] == pytest.approx(math.sin(angle), abs=1e-7)
            assert table[p, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-7)


def test_post_ln_model_is_causal_tied_and_post_norm():
    from radam_ref.paper.transformer import PostLNLanguageModel

    torch.manual_seed(0)
    model = PostLNLanguageModel(11, width=16, layers=2, heads=2, context=8).eval()
    assert all(layer.norm_first is False for layer in model.layers)
    tokens = torch.randint(0, 11, (3, 8))
    logits = model(tokens)
    assert logits.shape == (3, 8, 11)
    changed = tokens.clone()
    changed[:, 5] = (changed[:, 5] + 1) % 11
    other = model(changed)
    torch.testing.assert_close(other[:, :5], logits[:, :5])  # the past does not see the future
    assert not torch.allclose(other[:, 5:], logits[:, 5:])
    # Tied output: the logits are the last hidden state times the embedding matrix.
    assert model.embed.weight.grad is None
    logits.sum().backward()
    assert model.embed.weight.grad is not None
    with pytest.raises(ValueError, match="context=8"):
        model(torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.parametrize(
    "kwargs, word",
    [(dict(width=15), "width"), (dict(layers=0), "layers"), (dict(heads=3), "heads=3"),
     (dict(dropout=1.0), "dropout")],
)
def test_post_ln_model_bad_input(kwargs, word):
    from radam_ref.paper.transformer import PostLNLanguageModel

    args = dict(width=16, layers=1, heads=2, context=4)
    args.update(kwargs)
    with pytest.raises(ValueError) as info:
        PostLNLanguageModel(5, **args)
    assert word in str(info.value)


def test_gradient_histogram_against_numpy():
    from radam_ref.paper.warmup_experiment import HIST_EDGES, _histogram

    values = np.concatenate([np.random.default_rng(3).normal(-4.0, 2.0, 5000), [-np.inf, -30.0, 5.0]])
    ours = np.asarray(_histogram(torch.as_tensor(values)))
    clipped = np.clip(values, HIST_EDGES[0], HIST_EDGES[-1])
    counts, _ = np.histogram(clipped, bins=np.asarray(HIST_EDGES))
    np.testing.assert_allclose(ours, counts / counts.sum(), rtol=0, atol=1e-15)
    assert ours[0] >= 2 / values.size and ours[-1] >= 1 / values.size


def test_warmup_runs_are_deterministic_and_shaped():
    from radam_ref.paper import warmup_experiment as w

    settings_ = _tiny_settings()
    kwargs = dict(learning_rates=(3e-3, 1e-3), seeds=(0, 1), claim_lr=3e-3,
                  grid={"Adam-2k": (3e-3,), "Adam-eps": (3e-3,)})
    first = w.run(settings_, **kwargs)
    second = w.run(settings_, **kwargs)
    assert first.train_loss == second.train_loss and first.grad_median == second.grad_median
    assert first.histograms == second.histograms and first.valid_loss == second.valid_loss
    assert ("Adam-2k", 1e-3) not in first.train_loss and ("Adam", 1e-3) in first.train_loss
    assert first.valid_steps == (3, 6)
    for key, runs in first.train_loss.items():
        assert len(runs) == 2 and all(len(c) == 6 for c in runs)
        for hist in first.histograms[key]:
            assert len(hist) == 4 and all(sum(row) == pytest.approx(1.0) for row in hist)
    # The same seed starts from the same weights and minibatch: the first loss and the
    # first gradients agree across optimizers (Adam-2k's first regular minibatch too).
    firsts = {name: first.train_loss[(name, 3e-3)][0][0] for name in w.OPTIMIZERS}
    assert len(set(firsts.values())) == 1
    assert first.median_at("Adam", 3e-3, 1) == first.median_at("RAdam", 3e-3, 1)
    assert first.train_loss[("Adam", 3e-3)][0] != first.train_loss[("Adam", 3e-3)][1]
    assert first.corpus["train_chars"] == 4500 and first.corpus["valid_chars"] == 500
    table = first.table_markdown().splitlines()
    assert table[0] == "| optimizer | lr = 0.003 | lr = 0.001 |" and len(table) == 7
    assert table[-1].endswith("| – |")  # Adam-eps did not run at 1e-3
    assert first.table_csv().count("\n") == 1 + 2 * (3 * 2 + 2)


def test_warmup_result_does_not_depend_on_workers():
    from radam_ref.paper import warmup_experiment as w

    settings_ = _tiny_settings(steps=3, eval_every=3, hist_steps=2)
    kwargs = dict(learning_rates=(3e-3,), seeds=(0,), claim_lr=3e-3, optimizers=("Adam", "RAdam"))
    one = w.run(settings_, **kwargs)
    two = w.run(settings_, workers=2, **kwargs)
    assert one.train_loss == two.train_loss and one.histograms == two.histograms


def test_radam_lowers_the_loss_on_the_tiny_transformer():
    from radam_ref.paper import warmup_experiment as w
    from radam_ref.paper.text_corpus import load_corpus

    settings_ = _tiny_settings(steps=60, eval_every=60, hist_steps=1, beta2=0.99)
    out = w.train_one("RAdam", 1e-2, 0, load_corpus(5000), settings_)
    assert not out["diverged"]
    assert np.mean(out["train"][-10:]) < np.mean(out["train"][:10]) - 0.3


def test_warmup_schedule_is_applied_on_the_transformer():
    """T_w = 1 makes Adam-warmup plain Adam (factor min(t, 1)/1 = 1); T_w > 1 does not."""
    from radam_ref.paper import warmup_experiment as w
    from radam_ref.paper.text_corpus import load_corpus

    corpus = load_corpus(5000)
    plain = w.train_one("Adam", 1e-2, 0, corpus, _tiny_settings(steps=4, warmup_steps=1))
    same = w.train_one("Adam-warmup", 1e-2, 0, corpus, _tiny_settings(steps=4, warmup_steps=1))
    slow = w.train_one("Adam-warmup", 1e-2, 0, corpus, _tiny_settings(steps=4, warmup_steps=4))
    assert same["train"] == plain["train"]
    assert slow["train"][0] == plain["train"][0] and slow["train"][1:] != plain["train"][1:]


def test_diverged_runs_are_marked_and_plotted(tmp_path):
    from radam_ref.paper import warmup_experiment as w

    s = _tiny_settings(steps=3, hist_steps=2, eval_every=3)
    with pytest.warns(Warning):  # the RAdam config warns about lr > 1
        result = w.run(s, learning_rates=(1e30,), seeds=(0,), claim_lr=1e30, optimizers=("Adam", "RAdam"))
    assert result.diverged == {("Adam", 1e30): 1, ("RAdam", 1e30): 1}
    curve = result.train_loss[("Adam", 1e30)][0]
    assert math.isfinite(curve[0]) and all(math.isnan(v) for v in curve[1:])
    assert result.final_train("Adam", 1e30) == [math.inf]
    assert "| Adam | diverged†1 |" in result.table_markdown()
    w.plot_curves(result, tmp_path / "c.png")
    w.plot_histograms(result, tmp_path / "h.png")
    assert (tmp_path / "h.png").read_bytes().startswith(PNG_MAGIC)


def test_warmup_bad_input():
    from radam_ref.paper import warmup_experiment as w

    with pytest.raises(ValueError, match="layers"):
        _tiny_settings(layers=0)
    with pytest.raises(ValueError, match="beta2"):
        _tiny_settings(beta2=1.0)
    with pytest.raises(ValueError, match="adam_k"):
        _tiny_settings(adam_k=-1)
    with pytest.raises(ValueError, match="claim_lr"):
        w.run(_tiny_settings(), learning_rates=(1e-3,), seeds=(0,), claim_lr=3e-3)
    with pytest.raises(ValueError, match="'SGD'"):
        w.run(_tiny_settings(), learning_rates=(1e-3,), seeds=(0,), claim_lr=1e-3, optimizers=("SGD",))
    with pytest.raises(ValueError, match="workers"):
        w.run(_tiny_settings(), learning_rates=(1e-3,), seeds=(0,), claim_lr=1e-3, workers=0)
    with pytest.raises(ValueError, match="optimizer.*'Adagrad'"):
        w.make_optimizer("Adagrad", [torch.zeros(2, requires_grad=True)], 0.01)


def _synthetic_warmup_result(finals, medians, unigram=3.3):
    """A WarmupResult whose every curve is flat at the given final loss, and whose
    median log10|g| is the given constant for every update."""
    from radam_ref.paper.warmup_experiment import HIST_EDGES, WarmupResult

    s = _tiny_settings(steps=10, hist_steps=10, eval_every=10)
    train = {(n, 1e-3): [[v] * 10 for v in vs] for n, vs in finals.items()}
    valid = {(n, 1e-3): [[v] for v in vs] for n, vs in finals.items()}
    hist = [[1.0 / (len(HIST_EDGES) - 1)] * (len(HIST_EDGES) - 1)] * 10
    return WarmupResult(
        settings=s, learning_rates=(1e-3,), optimizers=tuple(finals), seeds=(0, 1), claim_lr=1e-3,
        corpus={"unigram_entropy": unigram, "python": "3.x", "documents": 2, "files": 1, "vocabulary": 5,
                "train_chars": 90, "valid_chars": 10}, train_loss=train, valid_steps=(10,), valid_loss=valid,
        histograms={k: [hist, hist] for k in train},
        grad_median={(n, 1e-3): [[m] * 10, [m] * 10] for n, m in medians.items()},
        diverged={},
    )


def test_warmup_claims_verdicts():
    from radam_ref.paper import claims

    finals = {"Adam": [3.3, 3.31], "Adam-warmup": [2.4, 2.5], "RAdam": [2.5, 2.52],
              "Adam-2k": [2.45, 2.45], "Adam-eps": [2.8, 2.9]}
    medians = {"Adam": -8.0, "Adam-warmup": -3.0, "RAdam": -2.8, "Adam-2k": -3.5, "Adam-eps": -3.9}
    result = _synthetic_warmup_result(finals, medians)
    assert result.final_train("Adam", 1e-3) == [3.3, 3.31]
    rows = {c.key: c for c in claims.warmup_claims(result)}
    assert {k: c.verdict for k, c in rows.items()} == {
        "tf_no_warmup_fails": "agrees", "tf_radam_no_warmup": "agrees",
        "tf_gradient_distortion": "agrees", "tf_controls_no_distortion": "agrees",
        "tf_controls_fix": "agrees", "tf_adam_eps_worse": "agrees",
    }
    assert "Adam 3.305 (ppl 27.2)" in rows["tf_no_warmup_fails"].reproduced
    assert "unigram entropy 3.300" in rows["tf_no_warmup_fails"].reproduced
    # RAdam trains but 0.2 nats behind warmup: partly.  Adam overlaps warmup: disagrees.
    bad = dict(finals, RAdam=[2.6, 2.6], Adam=[2.45, 3.3], **{"Adam-eps": [3.2, 3.2]})
    bad_medians = dict(medians, Adam=-3.5, **{"Adam-eps": -4.5})
    rows = {c.key: c.verdict for c in claims.warmup_claims(_synthetic_warmup_result(bad, bad_medians))}
    assert rows == {"tf_no_warmup_fails": "disagrees", "tf_radam_no_warmup": "partly",
                    "tf_gradient_distortion": "disagrees", "tf_controls_no_distortion": "partly",
                    "tf_controls_fix": "partly", "tf_adam_eps_worse": "agrees"}


def test_warmup_claims_supplement_rows_and_two_beta2_paragraph():
    """A supplementary run's rows carry β₂ in key, section and value, with unchanged
    verdicts; the report compares the two β₂ settings."""
    import dataclasses

    from radam_ref.paper import claims, report
    from radam_ref.paper.sizes import SIZES

    finals = {"Adam": [3.3, 3.31], "Adam-warmup": [2.4, 2.5], "RAdam": [3.3, 3.3],
              "Adam-2k": [3.3, 3.3], "Adam-eps": [3.3, 3.3]}
    medians = {"Adam": -8.0, "Adam-warmup": -3.0, "RAdam": -2.8, "Adam-2k": -3.5, "Adam-eps": -3.9}
    main = _synthetic_warmup_result(finals, medians)
    main = dataclasses.replace(main, settings=dataclasses.replace(main.settings, beta2=0.98))
    other = _synthetic_warmup_result(dict(finals, RAdam=[2.5, 2.5]), medians)
    assert other.settings.beta2 == 0.999
    plain = claims.warmup_claims(other)
    marked = claims.warmup_claims(other, supplement=True)
    assert [c.key + "_beta2_0.999" for c in plain] == [c.key for c in marked]
    assert [c.verdict for c in plain] == [c.verdict for c in marked]
    assert all(m.reproduced == "β₂ = 0.999, " + p.reproduced
               and m.section == p.section + " (β₂ = 0.999)" for p, m in zip(plain, marked))
    # RAdam stalls with Adam at the main β₂ (0.98), trains at 0.999 (0.05 nats behind warmup).
    verdicts = {c.key: c.verdict for c in claims.warmup_claims(main) + marked}
    assert verdicts["tf_radam_no_warmup"] == "disagrees"
    assert verdicts["tf_radam_no_warmup_beta2_0.999"] == "agrees"
    rows = claims.warmup_claims(main) + marked
    figures = {"warmup": "a.png", "warmup_hist": "b.png", "warmup_beta2_0.999": "c.png"}
    tables = {"warmup": main.table_markdown(), "warmup_beta2_0.999": other.table_markdown()}
    parts = {"warmup": main, "warmup_supplements": [other]}
    text = report.render(claims=rows, size=SIZES["tiny"], parts=parts, figures=figures, tables=tables, settings={}, versions={}, seconds=1.0)
    assert "### Supplement: β₂ = 0.999, lr = 0.001" in text and "](c.png)" in text
    assert "rows 7–12 of the claims table" in text
    assert "| RAdam | 3.300 | 2.500 |" in text
    assert ("RAdam without warmup trains at β₂ = 0.999 and stays within 0.25 nats of Adam "
            "at β₂ = 0.98") in text
    assert "against linear warmup's 1.000" in text  # min(10, T_w = 3)/3
    assert "Adam-2k and Adam-eps stay within 0.25 nats of Adam without warmup at both β₂" in text
