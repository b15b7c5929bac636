"""Figure 9: the simulation of §5.3, written against the array API.

For each mean μ, ``trajectories`` independent gradient streams g_1, g_2, … ~ N(μ, 1)
feed Adam's second moment (Alg. 2 line 5, β₂ = 0.999):

    v_t = β₂ v_{t−1} + (1 − β₂) g_t²,     v̂_t = sqrt(v_t / (1 − β₂ᵗ))   (Alg. 2 line 10)

and at every step t ≥ 5 (the first rectified step, ρ_5 > 4) we record, across
trajectories, the sample variances (correction 1)

    Var[1/v̂_t]      — the adaptive learning rate ψ(g_1, …, g_t) of eq. 1;
    Var[r_t/v̂_t]    — the rectified adaptive rate of Algorithm 2.

Reading of v̂: §5.3 names the two quantities "the variance of the original adaptive
learning rate and the proposed rectified adaptive learning rate, i.e. Var[1/v_t] and
Var[r_t/v_t]".  The adaptive learning rate is ψ = sqrt((1 − β₂ᵗ)/v_t) (eq. 1), which
is 1/v̂_t with Algorithm 2's v̂_t = sqrt(v_t/(1 − β₂ᵗ)) — the square root of the
bias-corrected second moment, not the second moment itself.

Since r_t is deterministic, Var[r_t/v̂_t] = r_t² Var[1/v̂_t]; r_t and 1 − β₂ᵗ come
from :func:`radam_ref.schedule`.

Memory: the run streams over iterations and keeps only the running v (one value per
μ and trajectory) and two variances per μ and step — O(#μ · trajectories + #μ ·
iterations), never the (#μ, trajectories, iterations) cube.  The per-step
variances stay on the array's device until the end (one transfer).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

__all__ = ["SimulationResult", "simulate", "plot", "table_markdown", "BACKENDS"]

#: Array libraries the simulation can run on (the random numbers are library-specific).
BACKENDS = ("numpy", "torch", "cupy")


@dataclasses.dataclass(frozen=True)
class SimulationResult:
    """Figure 9's data as NumPy arrays.

    Attributes:
        mus: the means μ (tuple).
        beta2, trajectories, backend: run parameters.
        steps: iterations t = first_step, …, iterations.
        var_adaptive: shape (len(mus), len(steps)), Var[1/v̂_t].
        var_rectified: same shape, Var[r_t/v̂_t].
        rho_t, r_t: the step scalars at ``steps``.
        theory_exact: eq. 4 at ρ_t with τ = 1 — the model's prediction of
            Var[1/v̂_t] for μ = 0 (σ = 1), under the EMA → SMA approximation of §4.1.
    """

    mus: tuple
    beta2: float
    trajectories: int
    backend: str
    steps: object
    var_adaptive: object
    var_rectified: object
    rho_t: object
    r_t: object
    theory_exact: object

    def summary(self) -> dict:
        """Per-μ numbers the report quotes (plain floats)."""
        import numpy as np

        n = len(self.steps)
        tail = slice(max(n - max(n // 10, 1), 0), n)
        out = []
        for i, mu in enumerate(self.mus):
            adaptive, rectified = self.var_adaptive[i], self.var_rectified[i]
            out.append({
                "mu": float(mu),
                "adaptive_first": float(adaptive[0]),
                "adaptive_last10pct": float(np.mean(adaptive[tail])),
                "adaptive_first_over_last": float(adaptive[0] / np.mean(adaptive[tail])),
                "adaptive_max_over_min": float(np.max(adaptive) / np.min(adaptive)),
                "rectified_first": float(rectified[0]),
                "rectified_last10pct": float(np.mean(rectified[tail])),
                "rectified_max_over_min": float(np.max(rectified) / np.min(rectified)),
            })
        zero = [i for i, mu in enumerate(self.mus) if mu == 0.0]
        checks = {}
        if zero:
            i = zero[0]
            for t in (5, 10, 100, 1000, int(self.steps[-1])):
                k = t - int(self.steps[0])
                if 0 <= k < n:
                    checks[t] = (float(self.var_adaptive[i][k]), float(self.theory_exact[k]))
        return {"per_mu": out, "mu0_sim_vs_eq4": checks,
                "first_step": int(self.steps[0]), "last_step": int(self.steps[-1])}


def table_markdown(summary: dict) -> str:
    """Per-μ numbers of :meth:`SimulationResult.summary` as a markdown table."""
    first = summary["first_step"]
    rows = [
        f"| μ | Var[1/v̂_{first}] | Var[1/v̂_t], last 10 % | ratio | Var[r_{first}/v̂_{first}] | "
        "Var[r_t/v̂_t], last 10 % | max/min Var[1/v̂_t] | max/min Var[r_t/v̂_t] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in summary["per_mu"]:
        rows.append(
            f"| {row['mu']:g} | {row['adaptive_first']:.3g} | {row['adaptive_last10pct']:.3g} | "
            f"{row['adaptive_first_over_last']:.0f} | {row['rectified_first']:.3g} | "
            f"{row['rectified_last10pct']:.3g} | {row['adaptive_max_over_min']:.0f} | "
            f"{row['rectified_max_over_min']:.1f} |"
        )
    return "\n".join(rows)


def _namespace(backend: str, device, seed: int):
    """(xp, device, normal(shape) -> float64 array, to_numpy) for ``backend``."""
    if backend == "numpy":
        import numpy as np
        from array_api_compat import numpy as xp

        if device not in (None, "cpu"):
            raise ValueError(f"device must be None or 'cpu' for backend 'numpy', got {device!r}")
        rng = np.random.default_rng(seed)
        return xp, "cpu", (lambda shape: rng.standard_normal(shape)), np.asarray
    if backend == "torch":
        import torch
        from array_api_compat import torch as xp

        dev = torch.device(device or "cpu")
        gen = torch.Generator(device=dev)
        gen.manual_seed(seed)
        return (
            xp,
            dev,
            lambda shape: torch.randn(shape, generator=gen, device=dev, dtype=torch.float64),
            lambda a: a.detach().cpu().numpy(),
        )
    if backend == "cupy":
        import cupy
        from array_api_compat import cupy as xp

        dev = cupy.cuda.Device(int(device or 0))
        dev.use()
        rng = cupy.random.default_rng(seed)
        return xp, dev, (lambda shape: rng.standard_normal(shape, dtype=cupy.float64)), cupy.asnumpy
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def simulate(
    mus=(0.0, 0.01, 0.1, 0.5, 1.0, 10.0),
    *,
    beta2: float = 0.999,
    trajectories: int = 5000,
    iterations: int = 6000,
    first_step: int = 5,
    backend: str = "numpy",
    device=None,
    seed: int = 0,
    on_step: Callable[[], None] | None = None,
) -> SimulationResult:
    """Run §5.3's simulation; returns Var[1/v̂_t] and Var[r_t/v̂_t] per μ and step.

    Args:
        mus: means μ of g ~ N(μ, 1) (finite reals; the paper uses six).
        beta2: β₂ (paper: 0.999).
        trajectories: independent streams per μ (paper: 5000; at least 2).
        iterations: last step (paper: 6000).
        first_step: first recorded step (paper: 5, the first with ρ_t > 4); every
            recorded step must be rectified so that r_t exists.
        backend: ``"numpy"``, ``"torch"`` or ``"cupy"``; ``device`` picks the torch
            device (e.g. ``"cuda"``) or the CuPy device id.
        seed: seed of the backend's generator.
        on_step: called once per iteration (progress bars).

    Raises:
        TypeError, ValueError: naming the bad argument and its value.
    """
    import math

    import numpy as np

    import radam_ref
    from radam_ref import theory

    mus = tuple(mus)
    if not mus or not all(isinstance(m, (int, float)) and not isinstance(m, bool) and math.isfinite(m) for m in mus):
        raise ValueError(f"mus must be a non-empty sequence of finite reals, got {mus!r}")
    for name, value, low in (("trajectories", trajectories, 2), ("iterations", iterations, 1),
                             ("first_step", first_step, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an integer, got {value!r}")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value!r}")
    if first_step > iterations:
        raise ValueError(f"first_step must be <= iterations ({iterations}), got {first_step!r}")
    first = radam_ref.schedule(first_step, beta2=beta2)
    if not first.rectified:
        raise ValueError(
            f"first_step must be a rectified step (rho_t > 4) so that r_t exists; "
            f"rho_{first_step} = {first.rho_t!r} for beta2={beta2!r}, got first_step={first_step!r}"
        )

    xp, dev, normal, to_numpy = _namespace(backend, device, seed)
    shape = (len(mus), trajectories)
    mu = xp.reshape(xp.asarray([float(m) for m in mus], dtype=xp.float64, device=dev), (len(mus), 1))
    v = xp.zeros(shape, dtype=xp.float64, device=dev)
    one_minus_beta2 = 1.0 - beta2
    adaptive_vars, r_values, rho_values = [], [], []
    for t in range(1, iterations + 1):
        g = normal(shape) + mu
        v = beta2 * v + one_minus_beta2 * (g * g)  # Alg. 2 line 5
        if t >= first_step:
            sched = radam_ref.schedule(t, beta2=beta2)
            inverse_v_hat = xp.sqrt(sched.bias_correction2 / v)  # 1/v̂_t, Alg. 2 line 10
            adaptive_vars.append(xp.var(inverse_v_hat, axis=1, correction=1))
            r_values.append(sched.r_t)
            rho_values.append(sched.rho_t)
        if on_step is not None:
            on_step()
    var_adaptive = to_numpy(xp.stack(adaptive_vars, axis=1))
    r_t = np.asarray(r_values)
    rho_t = np.asarray(rho_values)
    return SimulationResult(
        mus=mus,
        beta2=beta2,
        trajectories=trajectories,
        backend=backend,
        steps=np.arange(first_step, iterations + 1),
        var_adaptive=var_adaptive,
        var_rectified=var_adaptive * r_t**2,
        rho_t=rho_t,
        r_t=r_t,
        theory_exact=theory.variance_exact(rho_t),
    )


def plot(result: SimulationResult, path) -> None:
    """Write Figure 9 as a PNG: one panel per μ, both variances against t, log scale."""
    from ._plotting import pyplot, save_png

    plt = pyplot()
    count = len(result.mus)
    cols = min(3, count)
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.5 * rows), squeeze=False, sharex=True)
    for i, mu in enumerate(result.mus):
        ax = axes[i // cols][i % cols]
        ax.plot(result.steps, result.var_adaptive[i], lw=1.2, label=r"Var[$1/\hat v_t$]")
        ax.plot(result.steps, result.var_rectified[i], lw=1.2, label=r"Var[$r_t/\hat v_t$]")
        if mu == 0.0:
            ax.plot(result.steps, result.theory_exact, "k:", lw=1.0, label=r"eq. 4 at $\rho_t$")
        ax.set_yscale("log")
        ax.set_xscale("log")
        ax.set_title(rf"$\mu$ = {mu:g}", fontsize=10)
        ax.grid(True, which="major", alpha=0.25)
        if i % cols == 0:
            ax.set_ylabel("variance")
        if i // cols == rows - 1:
            ax.set_xlabel("iteration t")
    for j in range(count, rows * cols):
        axes[j // cols][j % cols].axis("off")
    axes[0][0].legend(fontsize=7, frameon=False)
    fig.suptitle(
        f"Figure 9: g ~ N(μ, 1), β₂ = {result.beta2}, {result.trajectories} trajectories",
        fontsize=10,
    )
    fig.tight_layout()
    save_png(fig, path)
