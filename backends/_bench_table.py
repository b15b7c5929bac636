"""The table ``radam-ref bench`` prints (rich), and its summary against the targets."""

from __future__ import annotations

__all__ = ["print_report", "target_lines"]

# (backend key, layout, minimum fraction of the roofline) from the project's targets.
_ROOFLINE_TARGETS = (("numpy_backend", "single", 0.75), ("numpy_backend", "many", 0.60),
                     ("cupy_backend", "single", 0.85))


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f}"


def target_lines(report: dict) -> list[str]:
    """One line per target that this report can judge."""
    lines = []
    for layout in report["layouts"]:
        rows = {row["key"]: row for row in layout["results"]}
        for key, name, minimum in _ROOFLINE_TARGETS:
            if name == layout["layout"] and key in rows:
                got = rows[key]["fraction_of_roofline"]
                verdict = "met" if got >= minimum else f"missed by {100 * (minimum - got):.1f} points"
                strict = rows[key]["params_per_s"] / layout["in_place_roofline_params_per_s"]
                lines.append(f"{key} on {name}: {100 * got:.1f}% of roofline "
                             f"(target >= {100 * minimum:.0f}%: {verdict}); "
                             f"{100 * strict:.1f}% of the in-place reference")
        for key in ("numpy_backend", "cupy_backend"):
            if key in rows and "optax_jit" in rows:
                ratio = rows[key]["params_per_s"] / rows["optax_jit"]["params_per_s"]
                lines.append(f"{key} on {layout['layout']}: {ratio:.2f}x optax.radam under jit "
                             f"(target > 1: {'met' if ratio > 1 else 'missed'})")
            if key in rows:
                share = rows[key]["peak_extra_bytes"] / layout["param_bytes"]
                lines.append(f"{key} on {layout['layout']}: peak extra memory "
                             f"{_mib(rows[key]['peak_extra_bytes'])} MiB = {100 * share:.2f}% "
                             "of parameter bytes (target <= 1% for large arrays)")
    lines.extend(_torch_vs_numpy_lines(report))
    if "mixed_precision" in report:
        from ._bench_extra import extra_target_lines

        lines.extend(extra_target_lines(report["mixed_precision"], report["small_steps"]))
    return lines


def _torch_vs_numpy_lines(report: dict) -> list[str]:
    lines = []
    for layout in report["layouts"]:
        rows = {row["key"]: row for row in layout["results"]}
        if "torch_backend" in rows and "numpy_backend" in rows:
            ratio = rows["torch_backend"]["params_per_s"] / rows["numpy_backend"]["params_per_s"]
            lines.append(f"torch_backend on {layout['layout']} ({layout['arrays']} arrays): "
                         f"{100 * ratio:.0f}% of numpy_backend (target >= 90%: "
                         f"{'met' if ratio >= 0.9 else 'missed'})")
        if layout["layout"] == "single" and "numpy_backend" in rows:
            share = (rows["numpy_backend"]["params_per_s"]
                     / layout["in_place_roofline_params_per_s"])
            lines.append(f"numpy_backend on single: {100 * share:.0f}% of the in-place roofline "
                         f"(target >= 90%: {'met' if share >= 0.9 else 'missed'})")
    return lines


def print_report(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    machine = report["machine"]
    console.print(
        f"[bold]radam-ref bench[/bold] — {machine['device']}, {machine.get('gpu', '')}"
        f"{machine['cpu_count']} CPUs, numba threads {machine.get('numba_threads', '-')}; "
        f"float32, {report['bytes_per_param']} B/param; medians of "
        f"{report['settings']['repeat']} steps after {report['settings']['warmup']} warm-up"
    )
    for layout in report["layouts"]:
        table = Table(
            title=(f"{layout['layout']}: {layout['arrays']} arrays, {layout['params']:,} params — "
                   f"copy {layout['copy_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s = roofline "
                   f"{layout['roofline_params_per_s'] / 1e6:.0f} M params/s; in place a += b "
                   f"{layout['in_place_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s = "
                   f"{layout['in_place_roofline_params_per_s'] / 1e6:.0f} M params/s"),
            title_justify="left",
        )
        for column in ("implementation", "M params/s", "ms/step", "% roofline",
                       "× torch foreach", "peak extra MiB (% params)"):
            table.add_column(column, justify="left" if column == "implementation" else "right")
        for row in layout["results"]:
            ratio = row["ratio_to_torch_foreach"]
            share = row["peak_extra_bytes"] / layout["param_bytes"]
            table.add_row(
                row["name"], f"{row['params_per_s'] / 1e6:,.0f}",
                f"{1e3 * row['seconds_median']:.2f}",
                f"{100 * row['fraction_of_roofline']:.0f}%",
                "-" if ratio is None else f"{ratio:.2f}",
                f"{_mib(row['peak_extra_bytes'])} ({100 * share:.1f}%)",
            )
        console.print(table)
        for skipped in layout["skipped"]:
            console.print(f"  skipped {skipped['name']}: {skipped['reason']}")
    if "mixed_precision" in report:
        from ._bench_extra import print_extra

        print_extra(console, report["mixed_precision"], report["small_steps"])
    for line in target_lines(report):
        console.print(line)
