"""The adapter protocol: how the suite drives any RAdam implementation.

The suite speaks to every implementation through two small classes.  To check
an RAdam that is not a ``torch.optim.Optimizer``, an optax-style factory or a
spec-style ``step`` function (another framework, a compiled binary, a remote
service), subclass :class:`Target` and :class:`Session`::

    import numpy as np
    from radam_ref.conformance import Target, Session

    class MyRAdam(Target):
        name = "my-radam"
        profile = "paper"                  # the profile it claims to follow

        def open(self, groups, dtype):
            (group,) = groups              # one parameter group, or raise NotSupported
            return MySession(group, dtype)

    class MySession(Session):
        def __init__(self, group, dtype):
            c = group.config               # a radam_ref.RAdamConfig
            self.opt = my_lib.RAdam([np.array(p) for p in group.params],
                                    lr=c.lr, betas=c.betas, eps=c.eps,
                                    weight_decay=c.weight_decay)
        def step(self, grads):             # grads[group][param]: ndarray or None
            self.opt.step(grads[0])
        def params(self):                  # current values, per group, per param
            return [[np.array(p, dtype=np.float64) for p in self.opt.params]]

and run ``radam-ref conformance mymodule:MyRAdam``.  Everything else is optional:
a feature the target does not declare is reported "not supported" by the checks
that need it, and so is any :class:`NotSupported` the adapter raises.

Values cross the boundary as NumPy arrays holding float64 (complex128) values
that are exact in the run's dtype; the adapter converts them to the target's
types and dtype (``"float64"``, ``"float32"``, ``"float16"``, ``"bfloat16"``,
``"complex128"``, ``"complex64"``) and back.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from radam_ref import PROFILES, RAdamConfig

__all__ = ["Target", "Session", "NotSupported", "TargetError", "FEATURES", "HYPERPARAMETERS"]

#: Optional capabilities a target may declare in ``Target.features``.
FEATURES = (
    "param_groups",      # several groups in ``open``, each with its own config
    "add_param_group",   # ``Session.add_group`` after steps were taken
    "state_dict",        # ``Session.save`` / ``Session.restore``
    "grad_none",         # a ``None`` gradient skips that parameter
    "complex",           # complex parameters (checked as real pairs)
    "autodiff",          # ``Target.differentiate``
    "side_effects",      # ``Session.last_inputs`` reports what the step read
)

#: Config fields every target is always told (they are plain hyperparameters).
HYPERPARAMETERS = ("lr", "betas", "eps", "weight_decay")

#: Config fields that are not behaviour.
_INFORMATIONAL = ("profile", "nonfinite")


class NotSupported(Exception):
    """The target cannot do what was asked (a feature, a dtype, an option value)."""


class TargetError(Exception):
    """The target raised while doing something it claims to support."""

    def __init__(self, message: str, original: BaseException | None = None) -> None:
        super().__init__(message)
        self.original = original


class Session:
    """One optimizer instance, stepping parameter groups."""

    def step(self, grads: Sequence[Sequence[np.ndarray | None]]) -> None:
        """One step; ``grads[group][param]`` is an array or ``None`` (no gradient)."""
        raise NotImplementedError

    def params(self) -> list:
        """Current parameter values: per group, per parameter, NumPy float64 or
        complex128 arrays of the parameters' shapes."""
        raise NotImplementedError

    def add_group(self, group) -> None:
        """Add a parameter group (``Group``) after construction."""
        raise NotSupported("adding a parameter group after construction")

    def save(self) -> Any:
        """A serialised snapshot of the optimizer state (not the parameters)."""
        raise NotSupported("saving optimizer state")

    def restore(self, blob: Any) -> None:
        """Load a snapshot from :meth:`save` into this (fresh) session."""
        raise NotSupported("restoring optimizer state")

    def last_inputs(self) -> dict:
        """What the last step was given, as the target holds it now:
        ``{name: [(before, after), ...]}`` of NumPy arrays, for every input the
        step must not write (gradients; parameters and state for functional
        steps).  Used by the side-effects check."""
        raise NotSupported("reporting the inputs of a step")

    def param_dtypes(self) -> list | None:
        """Dtype names of the parameters as the target holds them (None: unknown)."""
        return None

    def run_stream(self, grads_at, steps: int, record) -> list:
        """Take ``steps`` steps with gradients ``grads_at(t)``; return the params
        after each step ``t`` with ``record(t)`` true.  Override for speed."""
        out = []
        for t in range(1, steps + 1):
            self.step(grads_at(t))
            if record(t):
                out.append(self.params())
        return out

    def close(self) -> None:
        """Release resources (optional)."""


class Target:
    """An RAdam implementation the suite can check.

    Attributes:
        name: how reports call it.
        profile: the profile it claims (the default of ``--profile``).
        tunable: config fields beyond lr, betas, eps and weight_decay that the
            target can be told (e.g. ``{"maximize"}``); other axes are fixed by
            the implementation and are discovered, not told.
        weight_decay_modes: the modes it can be told (``"none"`` always works:
            the adapter passes weight_decay = 0).
        dtypes: dtypes it accepts; ``default_dtype`` the one checks use unless told.
        features: a subset of :data:`FEATURES`.
        spec: ``(name, kwargs)`` that rebuilds this target through
            :func:`radam_ref.conformance.resolve_target` (used in repros).
    """

    name: str = "target"
    profile: str = "paper"
    tunable: frozenset = frozenset()
    weight_decay_modes: frozenset | None = None
    dtypes: tuple = ("float64", "float32")
    default_dtype: str = "float64"
    features: frozenset = frozenset()
    spec: tuple | None = None

    def open(self, groups: Sequence, dtype: str) -> Session:
        """Build the optimizer over ``groups`` (``Group`` objects) in ``dtype``."""
        raise NotImplementedError

    def differentiate(self, params0, grads, config: RAdamConfig, dtype: str, cotangent):
        """Run len(grads) steps from ``params0`` (list of arrays) with
        ``grads[t][param]`` and return the gradient of Σ cotangent·θ_T with respect
        to ``params0`` and to every ``grads[t][param]``: ``(d_params0, d_grads)``."""
        raise NotSupported("differentiating through the step")

    # ------------------------------------------------------------------ #

    def claimed_config(self) -> RAdamConfig:
        return PROFILES[self.profile].config() if self.profile in PROFILES else RAdamConfig()

    def modes(self) -> frozenset:
        if self.weight_decay_modes is not None:
            return frozenset(self.weight_decay_modes) | {"none"}
        return frozenset({"none", self.claimed_config().weight_decay_mode})

    def unsupported(self, config: RAdamConfig) -> list[str]:
        """Options of ``config`` this target cannot be told (empty: all expressible).

        Axes the target does not expose are fixed by its implementation; asking
        for a value other than the claimed profile's is not expressible.
        """
        import dataclasses

        claimed = self.claimed_config()
        out = []
        for f in dataclasses.fields(RAdamConfig):
            name = f.name
            if name in HYPERPARAMETERS or name in _INFORMATIONAL:
                continue
            want = getattr(config, name)
            if name == "weight_decay_mode":
                if config.weight_decay and want not in self.modes():
                    out.append(f"weight_decay_mode={want!r}")
                continue
            if name in self.tunable:
                continue
            if want != getattr(claimed, name):
                out.append(f"{name}={want!r}")
        return out

    def describe(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
