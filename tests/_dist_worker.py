"""Worker for the distributed tests: one process of a 2-process gloo job on the CPU.

Run as ``python _dist_worker.py RANK WORLD_SIZE PORT OUT_DIR``.  Each rank trains
the same small float64 model on its half of a fixed batch under DDP, under FSDP2
(``fully_shard``, DTensor parameters) on each optimizer path, and under FSDP2
with a sharded ``torch.distributed.checkpoint`` save and resume mid-run.  Rank 0
writes the gathered parameters and optimizer state to ``OUT_DIR/results.pt``.

The test compares them with :func:`reference_run`, a single process that computes
the two half-batch gradients itself and averages them, as DDP and FSDP2 do.
"""

from __future__ import annotations

import datetime
import os
import sys

import torch

STEPS = 8
RESUME_AT = 4
OPTIM_KWARGS = {"lr": 0.05, "weight_decay": 0.1}
PATHS = {"default": {}, "single": {"foreach": False}, "foreach": {"foreach": True}}


def make_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    ).double()


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(100 + step)
    return (torch.randn(8, 4, generator=generator, dtype=torch.float64),
            torch.randn(8, 3, generator=generator, dtype=torch.float64))


def half(x: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    size = x.shape[0] // world
    return x[rank * size:(rank + 1) * size]


def loss_fn(model, x, y) -> torch.Tensor:
    return (model(x) - y).square().mean()


def reference_run(path: str, steps: int = STEPS, world: int = 2):
    """Single process: θ after ``steps`` steps with the gradient averaged over halves."""
    from radam_ref.backends.torch import RAdam

    model = make_model()
    optimizer = RAdam(model.parameters(), **OPTIM_KWARGS, **PATHS[path])
    for step in range(steps):
        x, y = batch(step)
        total = None
        for rank in range(world):
            model.zero_grad()
            loss_fn(model, half(x, rank, world), half(y, rank, world)).backward()
            grads = [p.grad.clone() for p in model.parameters()]
            total = grads if total is None else [a + b for a, b in zip(total, grads)]
        for p, g in zip(model.parameters(), total):
            p.grad = g / world
        optimizer.step()
    state = [optimizer.state[p] for p in model.parameters()]
    return ([p.detach().clone() for p in model.parameters()],
            [s["exp_avg"].clone() for s in state], [s["exp_avg_sq"].clone() for s in state],
            [int(s["step"]) for s in state])


def _train(model, optimizer, rank, world, steps):
    for step in steps:
        x, y = batch(step)
        optimizer.zero_grad()
        loss_fn(model, half(x, rank, world), half(y, rank, world)).backward()
        optimizer.step()


def _full(x):
    return x.full_tensor() if hasattr(x, "full_tensor") else x.detach().clone()


def _gather(model, optimizer):
    params = list(model.parameters())
    state = [optimizer.state[p] for p in params]
    return ([_full(p.detach()) for p in params],
            [_full(s["exp_avg"]) for s in state], [_full(s["exp_avg_sq"]) for s in state],
            [int(s["step"]) for s in state])


def run_ddp(rank, world, path):
    from torch.nn.parallel import DistributedDataParallel

    from radam_ref.backends.torch import RAdam

    model = DistributedDataParallel(make_model())
    optimizer = RAdam(model.parameters(), **OPTIM_KWARGS, **PATHS[path])
    _train(model, optimizer, rank, world, range(STEPS))
    return _gather(model, optimizer)


def _fsdp(path, seed=0):
    from torch.distributed.fsdp import fully_shard

    from radam_ref.backends.torch import RAdam

    model = make_model(seed)
    for layer in (model[0], model[2]):
        fully_shard(layer)
    fully_shard(model)
    return model, RAdam(model.parameters(), **OPTIM_KWARGS, **PATHS[path])


def run_fsdp2(rank, world, path):
    model, optimizer = _fsdp(path)
    assert all(type(p).__name__ == "DTensor" for p in model.parameters())
    _train(model, optimizer, rank, world, range(STEPS))
    if path == "default":  # the fused kernel took every local shard
        from radam_ref.backends import _torch_fused_cpu

        if _torch_fused_cpu.AVAILABLE:
            entries = optimizer._fused_plans[0].entries
            assert entries and all(isinstance(e, tuple) for e in entries), entries
    return _gather(model, optimizer)


def run_fsdp2_resumed(rank, world, path, checkpoint_dir):
    """Train RESUME_AT steps, save a sharded checkpoint, load it into a fresh model
    and optimizer (initialised differently), and train the remaining steps."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model, optimizer = _fsdp(path)
    _train(model, optimizer, rank, world, range(RESUME_AT))
    model_sd, optim_sd = get_state_dict(model, optimizer)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=checkpoint_dir)
    del model, optimizer

    model, optimizer = _fsdp(path, seed=1)
    model_sd, optim_sd = get_state_dict(model, optimizer)
    loaded = {"model": model_sd, "optim": optim_sd}
    dcp.load(loaded, checkpoint_id=checkpoint_dir)
    set_state_dict(model, optimizer, model_state_dict=loaded["model"],
                   optim_state_dict=loaded["optim"])
    _train(model, optimizer, rank, world, range(RESUME_AT, STEPS))
    return _gather(model, optimizer)


def main(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    try:
        results = {}
        for path in PATHS:
            results[f"ddp-{path}"] = run_ddp(rank, world, path)
            results[f"fsdp2-{path}"] = run_fsdp2(rank, world, path)
        results["fsdp2-default-resumed"] = run_fsdp2_resumed(
            rank, world, "default", os.path.join(out_dir, "checkpoint"))
        if rank == 0:
            torch.save(results, os.path.join(out_dir, "results.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
