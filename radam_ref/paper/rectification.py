"""§4.2–4.3: the rectification term r_t (exact, from eq. 4; and Algorithm 2's, from
eq. 6) against linear warmup's factor min(t, T_w)/T_w, for β₂ = 0.999."""

from __future__ import annotations

import dataclasses

__all__ = ["RectificationData", "compute", "plot"]


@dataclasses.dataclass(frozen=True)
class RectificationData:
    """r_t curves over ``steps`` (NumPy arrays).

    ``exact``: sqrt(C_var/Var(ρ_t)) with eq. 4 (defined for ρ_t > 2, t ≥ 3);
    ``algorithm2``: the spec's r_t (Alg. 2 line 11), NaN where not rectified (ρ_t ≤ 4);
    ``from_eq6``: sqrt(C_var/Var(ρ_t)) with eq. 6, computed as that ratio;
    ``warmup``: min(t, T_w)/T_w."""

    beta2: float
    warmup_steps: int
    steps: object
    exact: object
    algorithm2: object
    from_eq6: object
    warmup: object

    def summary(self) -> dict:
        import numpy as np

        ok = ~np.isnan(self.algorithm2)
        rel = np.abs(self.from_eq6[ok] - self.algorithm2[ok]) / self.algorithm2[ok]
        at = {int(t): i for i, t in enumerate(self.steps)}
        picks = [t for t in (5, 10, 100, 1000) if t in at]
        return {
            "beta2": self.beta2,
            "warmup_steps": self.warmup_steps,
            "max_relative_gap_eq6_ratio_vs_algorithm2": float(np.max(rel)),
            "first_rectified_step": int(self.steps[ok][0]),
            "exact_vs_algorithm2": {
                t: (float(self.exact[at[t]]), float(self.algorithm2[at[t]])) for t in picks
            },
        }


def compute(beta2: float = 0.999, t_max: int = 5000, warmup_steps: int = 2000) -> RectificationData:
    """Evaluate the three curves for t = 3, …, t_max (ρ_3 > 2 for β₂ ≥ 0.9)."""
    import numpy as np

    import radam_ref
    from radam_ref import theory

    steps = np.arange(3, t_max + 1)
    exact = theory.rectification_exact(steps, beta2=beta2)
    algorithm2 = np.array([
        (s.r_t if s.rectified else np.nan)
        for s in (radam_ref.schedule(int(t), beta2=beta2) for t in steps)
    ])
    rectified = ~np.isnan(algorithm2)
    from_eq6 = np.full(steps.shape, np.nan)
    from_eq6[rectified] = theory.rectification_approx(steps[rectified], beta2=beta2)
    warmup = theory.warmup_factor(steps, warmup_steps)
    return RectificationData(beta2, warmup_steps, steps, exact, algorithm2, from_eq6, warmup)


def plot(data: RectificationData, path) -> None:
    from ._plotting import pyplot, save_png

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    ax.plot(data.steps, data.algorithm2, label=r"$r_t$, Algorithm 2 (eq. 6)", lw=2)
    ax.plot(data.steps, data.exact, "--", label=r"$r_t$ from eq. 4 (exact)", lw=1.6)
    ax.plot(data.steps, data.warmup, ":", label=f"linear warmup, $T_w$ = {data.warmup_steps}", lw=1.6)
    ax.set_xscale("log")
    ax.set_xlabel("step t")
    ax.set_ylabel("multiplier of the learning rate")
    ax.set_title(rf"Rectification vs linear warmup ($\beta_2$ = {data.beta2})")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(frameon=False, loc="upper left")
    save_png(fig, path)
