"""Checks of a parameter's gradient and state before any path of the torch backend writes.

Every eager path (fused CPU kernel, foreach, single-tensor) runs :func:`check_buffers`
on each parameter of a step before anything is written, so a mismatch raises one
clear error naming the parameter and what differs, instead of a failure halfway
through the step or, for a kernel that reaches memory through pointers, a write
past the end of a buffer.  What is checked, per parameter θ with gradient g and
state (m, v, step):

* g, m and v are dense tensors with θ's shape, on θ's device;
* g's dtype is θ's, or one that promotes to it (a float32 gradient of a float64
  parameter, allowed once ``p.grad_dtype = None``: every path then computes
  exactly as the single-tensor path does).  A gradient wider than θ raises, as
  ``torch.optim.RAdam`` does (a RuntimeError there, a :class:`TensorMismatchError`
  here, which is both a ValueError and a RuntimeError);
* m and v are floating (complex for a complex θ) and agree with each other;
* step is a one-element tensor.

The fused kernel adds its own layout checks (contiguity, overlap) when it builds
its tables (``_torch_fused_cpu``).  Each check reads only metadata: O(number of
tensors), never O(elements).
"""

from __future__ import annotations

import bisect

import torch

__all__ = ["TensorMismatchError", "check_buffers", "check_disjoint"]


class TensorMismatchError(ValueError, RuntimeError):
    """A parameter's gradient or state disagrees with it (shape, dtype, device, layout,
    overlap).  A ValueError, and a RuntimeError like ``torch.optim.RAdam``'s errors in
    the same cases."""


def _describe(x) -> str:
    if not isinstance(x, torch.Tensor):
        return f"a {type(x).__qualname__}"
    return f"shape {tuple(x.shape)}, dtype {x.dtype}, device {x.device}"


def check_buffers(where: str, p: torch.Tensor, g, m, v, step) -> None:
    """Raise :class:`TensorMismatchError` naming ``where`` (e.g. ``param_groups[0]
    parameter 3``) if ``g``, ``m``, ``v`` or ``step`` cannot be used with ``p``."""
    if not isinstance(g, torch.Tensor) or g.layout is not torch.strided:
        raise TensorMismatchError(f"{where}: grad must be a dense tensor, got {_describe(g)}")
    if g.shape != p.shape or g.device != p.device:
        raise TensorMismatchError(
            f"{where}: grad has {_describe(g)}; the parameter has {_describe(p)}")
    if g.dtype != p.dtype and torch.promote_types(p.dtype, g.dtype) != p.dtype:
        raise TensorMismatchError(
            f"{where}: grad dtype {g.dtype} is wider than the parameter's {p.dtype} "
            "(torch.optim.RAdam raises here too); cast the gradient or the parameter")
    for name, x in (("exp_avg", m), ("exp_avg_sq", v)):
        if not isinstance(x, torch.Tensor) or x.layout is not torch.strided:
            raise TensorMismatchError(
                f"{where}: state {name!r} must be a dense tensor, got {_describe(x)}")
        if x.shape != p.shape or x.device != p.device:
            raise TensorMismatchError(
                f"{where}: state {name!r} has {_describe(x)}; the parameter has "
                f"{_describe(p)} (state loaded from another model?)")
        if x.is_complex() != p.is_complex() or not (x.is_floating_point() or x.is_complex()):
            raise TensorMismatchError(
                f"{where}: state {name!r} has dtype {x.dtype}, which cannot hold the "
                f"moments of a {p.dtype} parameter")
    if m.dtype != v.dtype:
        raise TensorMismatchError(
            f"{where}: state 'exp_avg' has dtype {m.dtype} but 'exp_avg_sq' has {v.dtype}")
    if not isinstance(step, torch.Tensor) or step.numel() != 1:
        raise TensorMismatchError(
            f"{where}: state 'step' must be a one-element tensor, got {_describe(step)}")


def _span(x: torch.Tensor):
    """[first byte, past the last byte) that ``x`` can touch (its strides' extent)."""
    start = x.data_ptr()
    extent = sum((n - 1) * abs(s) for n, s in zip(x.shape, x.stride())) + 1
    return start, start + extent * x.element_size()


def _local(x: torch.Tensor) -> torch.Tensor:
    local = getattr(x, "_local_tensor", None)  # a DTensor: its local shard
    if local is None and hasattr(x, "to_local"):
        local = x.to_local()
    return x if local is None else local


def check_disjoint(labels, params, exp_avgs, exp_avg_sqs, grads=None) -> None:
    """Raise :class:`TensorMismatchError` if two of the parameters and state tensors
    that a multi-tensor step writes may share memory (their byte extents overlap), or
    if a gradient (only read; gradients may share memory with each other) may share
    memory with one of them: a batched update of overlapping buffers cannot equal the
    sequential one."""
    spans = []
    for label, p, m, v in zip(labels, params, exp_avgs, exp_avg_sqs):
        for kind, x in (("parameter", p), ("exp_avg", m), ("exp_avg_sq", v)):
            x = _local(x)
            if x.numel() and x.device.type != "meta" and x.data_ptr():
                spans.append((*_span(x), str(x.device), kind, label))
    spans.sort(key=lambda s: (s[2], s[0]))
    for (low, high, device, kind, label), (low2, _, device2, kind2, label2) in zip(
            spans, spans[1:]):
        if device == device2 and low2 < high:
            raise TensorMismatchError(
                f"{label} {kind} and {label2} {kind2} share memory; a multi-tensor step "
                "writes parameters and state in place and needs them disjoint")
    if grads is None or not spans:
        return
    keys = [(s[2], s[0]) for s in spans]
    for label, g in zip(labels, grads):
        g = _local(g)
        if not (g.numel() and g.device.type != "meta" and g.data_ptr()):
            continue
        low, high = _span(g)
        k = bisect.bisect_left(keys, (str(g.device), high)) - 1
        if k >= 0 and spans[k][2] == str(g.device) and spans[k][1] > low:
            raise TensorMismatchError(
                f"{label} grad and {spans[k][4]} {spans[k][3]} share memory; a "
                "multi-tensor step writes parameters and state in place while it reads "
                "the gradients (pass a copy of the gradient)")
