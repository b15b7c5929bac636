"""The implementations ``radam-ref bench`` times, each behind one small factory.

A factory takes the layout's float32 parameters and gradients (NumPy arrays,
which it may copy to its own framework and device) and returns a ``step()``
closure that performs one optimizer step and returns only when the step is done
(device synchronised, JAX results ready).  Factories import their framework
lazily and raise ImportError when it is missing; the benchmark then skips them.

Every implementation runs the same amount of work per element: the torch
profile (threshold 5, ε before bias correction, no weight decay), which is
torch.optim.RAdam's default behaviour; optax.radam uses its own (ε after bias
correction), the same cost.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

__all__ = ["Implementation", "cpu_implementations", "cuda_implementations", "LR", "BETAS"]

LR = 1e-3
BETAS = (0.9, 0.999)
#: The spec-side config of every radam_ref implementation in the benchmark.
PROFILE = "torch"


@dataclasses.dataclass(frozen=True)
class Implementation:
    key: str        # short id, used by --impls and in the JSON
    name: str       # what the table shows
    make: Callable  # (params, grads) -> step()


def _config():
    from radam_ref import RAdamConfig

    return RAdamConfig.from_profile(PROFILE, lr=LR, betas=BETAS)


# --------------------------------------------------------------------------- CPU


def _numpy_backend(params, grads):
    from radam_ref.backends import numpy as backend

    config = _config()
    params = [p.copy() for p in params]
    state = backend.init(params)

    def step():
        backend.step_(params, grads, state, config)

    return step


def _spec_numpy(params, grads):
    import radam_ref

    config = _config()
    box = {"params": [p.copy() for p in params]}
    box["state"] = radam_ref.init(box["params"])

    def step():
        box["params"], box["state"] = radam_ref.step(box["params"], grads, box["state"], config)

    return step


def _plain_numpy(params, grads):
    """RAdam with NumPy ufuncs writing in place (``out=``): no fusion, one scratch
    array per parameter, about ten passes over memory per step."""
    import numpy as np

    import radam_ref

    config = _config()
    params = [p.copy() for p in params]
    ms = [np.zeros_like(p) for p in params]
    vs = [np.zeros_like(p) for p in params]
    scratch = [np.empty_like(p) for p in params]
    count = [0]
    b1, b2 = BETAS

    def step():
        count[0] += 1
        sched = config.schedule(count[0])
        for p, g, m, v, tmp in zip(params, grads, ms, vs, scratch):
            m *= b1
            np.multiply(g, 1.0 - b1, out=tmp)
            m += tmp
            v *= b2
            np.multiply(g, g, out=tmp)
            tmp *= 1.0 - b2
            v += tmp
            if sched.rectified:
                np.sqrt(v, out=tmp)
                tmp += config.eps
                np.divide(m, tmp, out=tmp)
                tmp *= LR * sched.r_t * sched.bias_correction2 ** 0.5 / sched.bias_correction1
            else:
                np.multiply(m, LR / sched.bias_correction1, out=tmp)
            p -= tmp

    return step


def _torch_factory(foreach):
    def make(params, grads):
        import torch

        tensors = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in params]
        for t, g in zip(tensors, grads):
            t.grad = torch.from_numpy(g.copy())
        optimizer = torch.optim.RAdam(tensors, lr=LR, betas=BETAS, foreach=foreach)

        def step():
            optimizer.step()

        return step

    return make


def _ours_torch(params, grads):
    import torch
    from radam_ref.backends.torch import RAdam

    tensors = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in params]
    for t, g in zip(tensors, grads):
        t.grad = torch.from_numpy(g.copy())
    optimizer = RAdam(tensors, lr=LR, betas=BETAS, profile=PROFILE)

    def step():
        optimizer.step()

    return step


def _optax_jit(params, grads, device=None):
    import jax
    import optax

    def put(x):
        return jax.device_put(x, device) if device is not None else jax.numpy.asarray(x)

    optimizer = optax.radam(LR, b1=BETAS[0], b2=BETAS[1])
    box = {"params": [put(p.copy()) for p in params]}
    grads_j = [put(g) for g in grads]
    box["state"] = optimizer.init(box["params"])

    @functools.partial(jax.jit, donate_argnums=(0, 2))
    def update(params, grads, state):
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    def step():
        box["params"], box["state"] = update(box["params"], grads_j, box["state"])
        jax.block_until_ready(box["params"])

    return step


def cpu_implementations() -> list[Implementation]:
    return [
        Implementation("numpy_backend", "backends.numpy step_", _numpy_backend),
        Implementation("spec_numpy", "spec radam_ref.step (NumPy)", _spec_numpy),
        Implementation("plain_numpy", "plain NumPy ufuncs (out=)", _plain_numpy),
        Implementation("torch_foreach", "torch RAdam foreach=True", _torch_factory(True)),
        Implementation("torch_forloop", "torch RAdam foreach=False",
                       _torch_factory(False)),
        Implementation("torch_backend", "backends.torch RAdam", _ours_torch),
        Implementation("optax_jit", "optax.radam under jax.jit", _optax_jit),
    ]


# --------------------------------------------------------------------------- CUDA


def _cupy_backend(params, grads):
    import cupy
    from radam_ref.backends import cupy as backend

    config = _config()
    params_d = [cupy.asarray(p) for p in params]
    grads_d = [cupy.asarray(g) for g in grads]
    state = backend.init(params_d)

    def step():
        backend.step_(params_d, grads_d, state, config)
        cupy.cuda.Device().synchronize()

    return step


def _spec_cupy(params, grads):
    import cupy
    import radam_ref

    config = _config()
    box = {"params": [cupy.asarray(p) for p in params]}
    grads_d = [cupy.asarray(g) for g in grads]
    box["state"] = radam_ref.init(box["params"])

    def step():
        box["params"], box["state"] = radam_ref.step(box["params"], grads_d, box["state"], config)
        cupy.cuda.Device().synchronize()

    return step


def _torch_cuda_factory(foreach):
    def make(params, grads):
        import torch

        if not torch.cuda.is_available():
            raise ImportError("torch has no CUDA device")
        tensors = [torch.nn.Parameter(torch.from_numpy(p.copy()).cuda()) for p in params]
        for t, g in zip(tensors, grads):
            t.grad = torch.from_numpy(g.copy()).cuda()
        optimizer = torch.optim.RAdam(tensors, lr=LR, betas=BETAS, foreach=foreach)

        def step():
            optimizer.step()
            torch.cuda.synchronize()

        return step

    return make


def _optax_gpu(params, grads):
    import jax

    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    if not gpus:
        raise ImportError("jax has no GPU device")
    return _optax_jit(params, grads, device=gpus[0])


def cuda_implementations() -> list[Implementation]:
    return [
        Implementation("cupy_backend", "backends.cupy step_", _cupy_backend),
        Implementation("spec_cupy", "spec radam_ref.step (CuPy)", _spec_cupy),
        Implementation("torch_foreach", "torch RAdam foreach=True (cuda)",
                       _torch_cuda_factory(True)),
        Implementation("optax_jit", "optax.radam under jax.jit (gpu)", _optax_gpu),
    ]
