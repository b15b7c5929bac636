"""RAdam under DDP and FSDP2 (2 processes, gloo, CPU) against a single process.

One 2-process job (``_dist_worker.py``) runs every scenario; each result must equal
:func:`_dist_worker.reference_run` bit for bit: the step is elementwise, so a
sharded parameter with sharded state must end where the unsharded one does.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

import _dist_worker  # noqa: E402

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                       reason="torch.distributed with gloo is not available"),
]

TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_job(out_dir) -> list[str]:
    """Run both ranks on a fresh port; returns the failures (empty on success)."""
    worker = os.path.join(os.path.dirname(__file__), "_dist_worker.py")
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([sys.executable, worker, str(rank), "2", str(port), str(out_dir)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in range(2)
    ]
    failures = []
    for rank, proc in enumerate(procs):
        try:
            out, _ = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            out = f"no result within {TIMEOUT_S} s"
            proc.communicate()
        if proc.returncode != 0:
            failures.append(f"rank {rank} (port {port}):\n{out[-4000:]}")
    return failures


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Run the 2-process job once; return rank 0's results.  A second attempt on a
    new port covers a port taken between choosing and binding it."""
    failures = []
    for attempt in range(2):
        out_dir = tmp_path_factory.mktemp(f"dist{attempt}")
        attempt_failures = _run_job(out_dir)
        if not attempt_failures:
            return torch.load(out_dir / "results.pt")
        failures += attempt_failures
    pytest.fail("the 2-process job failed twice:\n" + "\n".join(failures))


def _assert_same(actual, expected, label):
    params, exp_avg, exp_avg_sq, steps = actual
    ref_params, ref_m, ref_v, ref_steps = expected
    assert steps == ref_steps, label
    for name, xs, ys in (("θ", params, ref_params), ("exp_avg", exp_avg, ref_m),
                         ("exp_avg_sq", exp_avg_sq, ref_v)):
        for i, (x, y) in enumerate(zip(xs, ys)):
            torch.testing.assert_close(x, y, rtol=0, atol=0,
                                       msg=lambda m: f"{label}: {name}[{i}]: {m}")


@pytest.mark.parametrize("path", sorted(_dist_worker.PATHS))
def test_ddp_matches_a_single_process(results, path):
    _assert_same(results[f"ddp-{path}"], _dist_worker.reference_run(path), f"DDP {path}")


@pytest.mark.parametrize("path", sorted(_dist_worker.PATHS))
def test_fsdp2_matches_a_single_process(results, path):
    _assert_same(results[f"fsdp2-{path}"], _dist_worker.reference_run(path), f"FSDP2 {path}")


def test_fsdp2_sharded_checkpoint_resumes_like_the_uninterrupted_run(results):
    _assert_same(results["fsdp2-default-resumed"], results["fsdp2-default"],
                 "FSDP2 resumed from a torch.distributed.checkpoint")
    _assert_same(results["fsdp2-default-resumed"], _dist_worker.reference_run("default"),
                 "FSDP2 resumed vs single process")
