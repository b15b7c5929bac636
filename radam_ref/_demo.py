"""``radam-ref demo``: the step schedule of a profile and a few steps on NumPy."""

from __future__ import annotations

__all__ = ["register", "run"]

#: The most steps the demo prints (one line each): a demo, not a training loop.
MAX_STEPS = 100_000


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="print the step schedule and run a few RAdam steps on NumPy"
    )
    parser.add_argument("--profile", default="paper", help="profile name (default: paper)")
    parser.add_argument("--steps", type=int, default=8, help="steps to run, at most 100000 (default: 8)")
    parser.set_defaults(func=run)


def run(args) -> int:
    import sys

    import radam_ref

    if args.profile not in radam_ref.PROFILES:
        print(f"radam-ref demo: error: --profile: unknown profile {args.profile!r} "
              f"(known: {', '.join(radam_ref.PROFILES)})", file=sys.stderr)
        return 2
    if not 0 <= args.steps <= MAX_STEPS:
        print(f"radam-ref demo: error: --steps must be in [0, {MAX_STEPS}], got {args.steps}", file=sys.stderr)
        return 2
    import numpy as np

    config = radam_ref.RAdamConfig.from_profile(args.profile, lr=0.1)
    print(f"profile {config.profile!r}: betas={config.betas} eps={config.eps} "
          f"threshold: rho_t {config.comparison} {config.threshold}")
    print(f"{'t':>5} {'rho_t':>12} {'rectified':>9} {'r_t':>10} {'1-b1^t':>10} {'1-b2^t':>12}")
    for t in list(range(1, 9)) + [10, 100, 1000, 10000]:
        s = config.schedule(t)
        r_t = f"{s.r_t:10.6f}" if s.rectified else f"{'-':>10}"
        print(f"{t:>5} {s.rho_t:12.6f} {str(s.rectified):>9} {r_t} "
              f"{s.bias_correction1:10.6f} {s.bias_correction2:12.6e}")
    print(f"rho_inf = {config.schedule(1).rho_inf:.6f}")
    # Minimise f(x) = ½‖x − 1‖² from x = 0 on NumPy.
    x = np.zeros(3)
    state = radam_ref.init(x)
    print("\nminimising ½‖x − 1‖² from x = 0 (lr = 0.1):")
    for _ in range(args.steps):
        x, state = radam_ref.step(x, x - 1.0, state, config)
        print(f"  step {state.count}: x = {np.array2string(x, precision=6)}")
    return 0
