"""``radam-ref bench``: RAdam step throughput against the memory roofline.

An optimizer step is memory-bound: in float32 it reads θ, g, m, v and writes θ,
m, v — 28 bytes per parameter.  The roofline is therefore the measured copy
bandwidth divided by 28 B: a copy of the same working set (16 B per parameter)
through every core (CPU: a numba ``prange`` copy; GPU: a CuPy copy kernel).
A copy's stores also read their destination first (write-allocate), traffic the
in-place step does not have, so the benchmark also reports an in-place
read-modify-write bandwidth (``a += b``) as a second, stricter reference.

For each layout — one big array, 200 arrays of mixed sizes with the same total,
2,000 and 10,000 arrays of 1,000 elements — the benchmark sets up every available
implementation, warms each up (default 6 steps, so that every timed step is a
rectified one), then times ``--repeat`` rounds in which each implementation
(and the copy) takes one step in turn, and reports medians: parameters per
second, fraction of the roofline, ratio to torch.optim.RAdam(foreach=True), and
the peak extra memory of one step (the higher of the peak resident-set growth,
Linux only, and the peak of Python/NumPy allocations by ``tracemalloc``; on a
GPU, the growth of CuPy's memory pool).

Example: ``radam-ref bench --quick`` (seconds), ``radam-ref bench --json out.json``,
``radam-ref bench --device cuda --size 134217728``.
"""

from __future__ import annotations

from radam_ref._extras import require

require("radam_ref.backends.bench", "bench")  # one line naming the extra, not a bare ModuleNotFoundError

import argparse
import json
import os
import platform
import re
import statistics
import time
import tracemalloc

__all__ = ["register", "run", "LAYOUTS", "layout_sizes"]

LAYOUTS = ("single", "many", "small", "tiny")
_DEFAULT_SIZE = 16 * 2**20
BYTES_PER_PARAM = 28  # float32: read p, g, m, v; write p, m, v


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="time RAdam steps against the memory-copy roofline",
        description=" ".join(" ".join(__doc__.split("\n\n")[:2]).split()).replace("``", ""),
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cpu: NumPy backend and CPU peers; cuda: CuPy backend (default cpu)")
    parser.add_argument("--layouts", default=",".join(LAYOUTS),
                        help="comma-separated subset of: single (1 array of SIZE), many "
                             "(200 arrays totalling SIZE), small (SMALL_COUNT arrays of 1000), "
                             "tiny (10,000 arrays of 1000; 500 with --quick)")
    parser.add_argument("--size", type=int, default=None,
                        help=f"parameters of the single and many layouts (default {_DEFAULT_SIZE})")
    parser.add_argument("--small-count", type=int, default=None,
                        help="arrays of 1000 elements in the small layout (default 2000)")
    parser.add_argument("--repeat", type=int, default=None, help="timed steps (default 20)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed steps first (default 6: every timed step is rectified)")
    from ._bench_impls import cpu_implementations, cuda_implementations

    keys = sorted({i.key for i in cpu_implementations() + cuda_implementations()})
    parser.add_argument("--impls", default=None,
                        help="comma-separated implementation keys (default: every one "
                             f"installed): {', '.join(keys)}")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, few repeats, no optax: a smoke run (under 15 s "
                             "once the kernels are compiled)")
    parser.add_argument("--no-extra", action="store_true",
                        help="skip the mixed-precision and small-step tables (CPU)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--no-table", action="store_true", help="do not print the table")
    parser.set_defaults(func=run)


def layout_sizes(layout: str, size: int, small_count: int) -> list[int]:
    """Array sizes of a layout.  ``many``: 200 deterministic sizes spread over two
    decades (like the layers of a network), scaled to total exactly ``size``."""
    if layout == "single":
        return [size]
    if layout == "small":
        return [1000] * small_count
    if layout == "tiny":
        return [1000] * 10_000
    if layout == "many":
        weights = [10 ** (2 * ((i * 37) % 200) / 199) for i in range(200)]
        total = sum(weights)
        sizes = [max(1, int(size * w / total)) for w in weights]
        sizes[0] += size - sum(sizes)
        return sizes
    raise ValueError(f"unknown layout {layout!r} (choose from {LAYOUTS})")


def _settings(args) -> dict:
    quick = args.quick
    size = args.size if args.size is not None else (2**18 if quick else _DEFAULT_SIZE)
    small = args.small_count if args.small_count is not None else (100 if quick else 2000)
    repeat = args.repeat if args.repeat is not None else (3 if quick else 20)
    warmup = args.warmup if args.warmup is not None else (6 if not quick else 2)
    layouts = [x.strip() for x in args.layouts.split(",") if x.strip()]
    for layout in layouts:
        if layout not in LAYOUTS:
            raise ValueError(f"--layouts: unknown layout {layout!r} (choose from {LAYOUTS})")
    for name, value in (("--size", size), ("--small-count", small), ("--repeat", repeat)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if warmup < 0:
        raise ValueError(f"--warmup must be >= 0, got {warmup}")
    return dict(size=size, small_count=small, repeat=repeat, warmup=warmup, layouts=layouts)


# ------------------------------------------------------------------ memory probes


def _proc_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            match = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE)
        return int(match.group(1)) if match else None
    except OSError:
        return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _peak_extra_bytes_cpu(step) -> int:
    """Peak memory a step allocates beyond what existed before it."""
    resettable = _reset_peak_rss()
    rss_before = _proc_kib("VmRSS")
    tracemalloc.start()
    step()
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    hwm = _proc_kib("VmHWM")
    rss_growth = (hwm - rss_before) * 1024 if resettable and hwm and rss_before else 0
    return max(traced_peak, rss_growth, 0)


def _peak_extra_bytes_cuda(step) -> int:
    """Growth of CuPy's memory pool, or of torch's CUDA peak, over one step (JAX's
    allocator is not observed)."""
    import sys

    import cupy

    pool = cupy.get_default_memory_pool()
    pool.free_all_blocks()
    before = pool.total_bytes()
    torch = sys.modules.get("torch")
    torch_cuda = torch is not None and torch.cuda.is_available()
    if torch_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        torch_before = torch.cuda.memory_allocated()
    step()
    growth = pool.total_bytes() - before
    if torch_cuda:
        growth = max(growth, torch.cuda.max_memory_allocated() - torch_before)
    return max(0, growth)


# ------------------------------------------------------------------ roofline


def _copy_step_cpu(total: int):
    import numpy as np

    from ._numba_kernels import parallel_copy

    # Same working set as p, g, m, v: 16 B per parameter, copied (8 B read + 8 B written).
    source = np.ones(2 * total, dtype=np.float32)
    destination = np.zeros_like(source)

    def step():
        parallel_copy(destination, source)

    return step, 2 * source.nbytes


def _accumulate_step_cpu(total: int):
    import numpy as np

    from ._numba_kernels import parallel_accumulate

    # Same working set again; reads both arrays and writes one in place: 24 B/param.
    source = np.zeros(2 * total, dtype=np.float32)
    destination = np.ones_like(source)

    def step():
        parallel_accumulate(destination, source)

    return step, 3 * source.nbytes


def _accumulate_step_cuda(total: int):
    import cupy

    source = cupy.zeros(2 * total, dtype=cupy.float32)
    destination = cupy.ones_like(source)

    def step():
        destination.__iadd__(source)
        cupy.cuda.Device().synchronize()

    return step, 3 * source.nbytes


def _copy_step_cuda(total: int):
    import cupy

    source = cupy.ones(2 * total, dtype=cupy.float32)
    destination = cupy.zeros_like(source)

    def step():
        cupy.copyto(destination, source)
        cupy.cuda.Device().synchronize()

    return step, 2 * source.nbytes


# ------------------------------------------------------------------ driver


def _machine(device: str) -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "device": device}
    try:
        import numba

        info["numba_threads"] = numba.get_num_threads()
    except ImportError:
        pass
    if device == "cuda":
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        info["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return info


def _bench_layout(layout, sizes, implementations, settings, device):
    import numpy as np

    rng = np.random.default_rng(0)
    params = [rng.standard_normal(n, dtype=np.float32) for n in sizes]
    grads = [rng.standard_normal(n, dtype=np.float32) * np.float32(1e-2) for n in sizes]
    total = sum(sizes)
    cuda = device == "cuda"
    copy_step, copy_bytes = (_copy_step_cuda if cuda else _copy_step_cpu)(total)
    add_step, add_bytes = (_accumulate_step_cuda if cuda else _accumulate_step_cpu)(total)
    runners = [("copy", "memory copy (roofline)", copy_step),
               ("accumulate", "in-place a += b", add_step)]
    skipped = []
    for impl in implementations:
        try:
            runners.append((impl.key, impl.name, impl.make(params, grads)))
        except ImportError as exc:
            skipped.append({"key": impl.key, "name": impl.name, "reason": str(exc)})
    for _, _, step in runners:
        for _ in range(settings["warmup"]):
            step()
    times = {key: [] for key, _, _ in runners}
    for _ in range(settings["repeat"]):  # interleaved rounds: drift hits everyone alike
        for key, _, step in runners:
            start = time.perf_counter()
            step()
            times[key].append(time.perf_counter() - start)
    peak = _peak_extra_bytes_cuda if device == "cuda" else _peak_extra_bytes_cpu
    copy_seconds = statistics.median(times["copy"])
    bandwidth = copy_bytes / copy_seconds
    roofline = bandwidth / BYTES_PER_PARAM
    rows = []
    in_place_bandwidth = add_bytes / statistics.median(times["accumulate"])
    for key, name, step in runners[2:]:
        seconds = statistics.median(times[key])
        rows.append({
            "key": key, "name": name, "seconds_median": seconds,
            "seconds_all": times[key], "params_per_s": total / seconds,
            "fraction_of_roofline": total / seconds / roofline,
            "peak_extra_bytes": peak(step),
        })
    reference = next((r for r in rows if r["key"] == "torch_foreach"), None)
    for row in rows:
        row["ratio_to_torch_foreach"] = (row["params_per_s"] / reference["params_per_s"]
                                         if reference else None)
    return {
        "layout": layout, "arrays": len(sizes), "params": total,
        "param_bytes": 4 * total,
        "copy_bandwidth_bytes_per_s": bandwidth, "roofline_params_per_s": roofline,
        "in_place_bandwidth_bytes_per_s": in_place_bandwidth,
        "in_place_roofline_params_per_s": in_place_bandwidth / BYTES_PER_PARAM,
        "results": rows, "skipped": skipped,
    }


def run(args: argparse.Namespace) -> int:
    from . import _bench_impls

    try:
        settings = _settings(args)
    except ValueError as exc:
        print(f"radam-ref bench: {exc}")
        return 2
    device = args.device
    if device == "cuda":
        # JAX would otherwise reserve most of the GPU memory at its first array.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        try:
            import cupy

            cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # noqa: BLE001 - no CuPy or no driver
            print(f"radam-ref bench: --device cuda needs CuPy and an NVIDIA GPU ({exc})")
            return 2
        implementations = _bench_impls.cuda_implementations()
    else:
        implementations = _bench_impls.cpu_implementations()
    if args.impls:
        wanted = [x.strip() for x in args.impls.split(",") if x.strip()]
        known = {impl.key for impl in implementations}
        unknown = sorted(set(wanted) - known)
        if unknown:
            print(f"radam-ref bench: --impls: unknown {unknown} (known: {sorted(known)})")
            return 2
        implementations = [impl for impl in implementations if impl.key in wanted]
    report = {"machine": _machine(device), "settings": settings,
              "bytes_per_param": BYTES_PER_PARAM, "layouts": []}
    if args.quick and not args.impls:  # jax's import and jit compile alone take seconds
        implementations = [impl for impl in implementations if impl.key != "optax_jit"]
    for layout in settings["layouts"]:
        sizes = layout_sizes(layout, settings["size"], settings["small_count"])
        if layout == "tiny" and args.quick:
            sizes = sizes[:500]
        report["layouts"].append(_bench_layout(layout, sizes, implementations, settings, device))
    if device == "cpu" and not args.no_extra:
        from . import _bench_extra

        try:
            report["mixed_precision"] = _bench_extra.mixed_precision(
                settings["size"], settings["warmup"], settings["repeat"])
            report["small_steps"] = _bench_extra.small_steps(
                args.quick, 2, 5 if args.quick else 15)
        except ImportError as exc:
            report["extra_skipped"] = str(exc)
    if not args.no_table:
        from ._bench_table import print_report

        print_report(report)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)
    return 0
