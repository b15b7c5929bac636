"""The extra tables of ``radam-ref bench`` on the CPU: mixed precision and small steps.

Mixed precision (one array of SIZE parameters, interleaved rounds, medians):
the torch backend on float32; on bfloat16 and float16 parameters with float32
state (``state_dtype=torch.float32``); on bfloat16 parameters and state; and
``torch.optim.RAdam(foreach=True)`` on bfloat16.  Small steps: microseconds per
step of one tensor of 1K, 10K, 100K and 1M elements, and of 10, 100, 1,000 and
10,000 tensors of 1K, for the NumPy backend, the torch backend and
``torch.optim.RAdam`` (for-loop and foreach).  Ratios within one run are the
robust part on a shared machine.
"""

from __future__ import annotations

import statistics
import time

__all__ = ["mixed_precision", "small_steps", "extra_target_lines"]

LR = 1e-3


def _time(runners: dict, warmup: int, repeat: int) -> dict:
    for step in runners.values():
        for _ in range(warmup):
            step()
    times = {key: [] for key in runners}
    for _ in range(repeat):
        for key, step in runners.items():
            start = time.perf_counter()
            step()
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


def _torch_step(sizes, dtype, *, ours: bool, state_dtype=None, foreach=None):
    import torch

    from radam_ref.backends.torch import RAdam

    generator = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(n, generator=generator).to(dtype)) for n in sizes]
    for p in params:
        p.grad = (torch.randn(p.shape, generator=generator) * 1e-2).to(dtype)
    if ours:
        optimizer = RAdam(params, lr=LR, profile="torch", state_dtype=state_dtype)
    else:
        optimizer = torch.optim.RAdam(params, lr=LR, foreach=foreach)
    return optimizer.step


def _numpy_step(sizes):
    import numpy as np

    from radam_ref import RAdamConfig
    from radam_ref.backends import numpy as backend

    rng = np.random.default_rng(0)
    params = [rng.standard_normal(n, dtype=np.float32) for n in sizes]
    grads = [rng.standard_normal(n, dtype=np.float32) * np.float32(1e-2) for n in sizes]
    state = backend.init(params)
    config = RAdamConfig.from_profile("torch", lr=LR)
    return lambda: backend.step_(params, grads, state, config)


def mixed_precision(size: int, warmup: int, repeat: int) -> list[dict]:
    """Rows: key, name, params/s for one array of ``size`` parameters."""
    import torch

    specs = [
        ("fp32_fused", "backends.torch float32", dict(dtype=torch.float32, ours=True)),
        ("bf16_fp32_state", "backends.torch bf16, float32 state",
         dict(dtype=torch.bfloat16, ours=True, state_dtype=torch.float32)),
        ("fp16_fp32_state", "backends.torch fp16, float32 state",
         dict(dtype=torch.float16, ours=True, state_dtype=torch.float32)),
        ("bf16_bf16_state", "backends.torch bf16, bf16 state",
         dict(dtype=torch.bfloat16, ours=True)),
        ("fp16_fp16_state", "backends.torch fp16, fp16 state",
         dict(dtype=torch.float16, ours=True)),
        ("torch_foreach_bf16", "torch RAdam foreach=True, bf16",
         dict(dtype=torch.bfloat16, ours=False, foreach=True)),
    ]
    runners = {key: _torch_step([size], **kw) for key, _, kw in specs}
    seconds = _time(runners, warmup, repeat)
    return [{"key": key, "name": name, "params_per_s": size / seconds[key],
             "seconds_median": seconds[key]} for key, name, _ in specs]


def small_steps(quick: bool, warmup: int, repeat: int) -> list[dict]:
    """Rows: case, then µs per step for each implementation."""
    import torch

    cases = [("1 × 1K", [1000]), ("1 × 10K", [10_000]), ("1 × 100K", [100_000])]
    cases += [] if quick else [("1 × 1M", [1_000_000])]
    cases += [("10 × 1K", [1000] * 10), ("100 × 1K", [1000] * 100)]
    cases += [] if quick else [("1000 × 1K", [1000] * 1000), ("10000 × 1K", [1000] * 10_000)]
    rows = []
    for label, sizes in cases:
        runners = {
            "numpy_backend": _numpy_step(sizes),
            "torch_backend": _torch_step(sizes, torch.float32, ours=True),
            "torch_forloop": _torch_step(sizes, torch.float32, ours=False, foreach=False),
            "torch_foreach": _torch_step(sizes, torch.float32, ours=False, foreach=True),
        }
        reps = repeat if len(sizes) * sizes[0] < 5_000_000 else max(3, repeat // 4)
        seconds = _time(runners, warmup, reps)
        rows.append({"case": label, **{k: 1e6 * v for k, v in seconds.items()}})
    return rows


def extra_target_lines(mixed: list[dict], small: list[dict]) -> list[str]:
    lines = []
    rate = {row["key"]: row["params_per_s"] for row in mixed}
    if rate:
        ratio = rate["bf16_fp32_state"] / rate["fp32_fused"]
        lines.append(f"bf16 + float32 state: {ratio:.2f}x the float32 fused params/s "
                     f"(target >= 1.2: {'met' if ratio >= 1.2 else 'missed'})")
        ratio = rate["bf16_fp32_state"] / rate["torch_foreach_bf16"]
        lines.append(f"bf16 + float32 state: {ratio:.2f}x torch foreach on bf16 "
                     f"(target >= 3: {'met' if ratio >= 3 else 'missed'})")
    for row in small:
        if row["case"] == "1 × 1K":
            ok = row["torch_backend"] <= row["torch_forloop"]
            lines.append(f"one step on 1 × 1K: torch backend {row['torch_backend']:.0f} µs, "
                         f"torch for-loop {row['torch_forloop']:.0f} µs (target: no slower: "
                         f"{'met' if ok else 'missed'})")
    return lines


def print_extra(console, mixed: list[dict], small: list[dict]) -> None:
    from rich.table import Table

    if mixed:
        table = Table(title="mixed precision: one array", title_justify="left")
        for column in ("implementation", "M params/s", "× float32 fused", "× torch foreach bf16"):
            table.add_column(column, justify="left" if column == "implementation" else "right")
        rate = {row["key"]: row["params_per_s"] for row in mixed}
        for row in mixed:
            table.add_row(row["name"], f"{row['params_per_s'] / 1e6:,.0f}",
                          f"{row['params_per_s'] / rate['fp32_fused']:.2f}",
                          f"{row['params_per_s'] / rate['torch_foreach_bf16']:.2f}")
        console.print(table)
    if small:
        table = Table(title="small steps: µs per step (float32)", title_justify="left")
        keys = ("numpy_backend", "torch_backend", "torch_forloop", "torch_foreach")
        for column in ("case", *keys):
            table.add_column(column, justify="left" if column == "case" else "right")
        for row in small:
            table.add_row(row["case"], *(f"{row[k]:,.0f}" for k in keys))
        console.print(table)
