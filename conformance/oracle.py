"""The oracle: the spec, in float64, stepping parameter groups like an optimizer.

:class:`Oracle` holds per-parameter state (m, v and a step counter per parameter,
as ``torch.optim`` does: a parameter whose gradient is ``None`` is skipped and
its counter does not advance) and per-group configs, and applies the spec's own
per-element update (``radam_ref._step._update_exact``: Algorithm 2 with the exact
float64 step scalars of :func:`radam_ref.schedule`).  No RAdam formula is
written here.

Two hooks exist for the suite's own reasoning, never for the verdict on the
claimed profile:

* ``flips``: steps whose threshold decision is flipped, to build the alternative
  trajectory of the "acceptable" verdict (see :mod:`.tolerance`);
* ``schedule_fn``: replaces the step scalars (used by :mod:`.diagnose` to model a
  defect such as float32 step-scalar arithmetic);
* ``update_fn``: replaces the per-element update (the one-term formula changes of
  :mod:`.formulas`);
* ``group_model``: a modelled parameter-group defect (:data:`GROUP_MODELS`): a step
  counter per group, a cache of step scalars shared across groups, or a group
  that steps with another group's hyperparameter.

Beside the values, the oracle accumulates the error scale S_t of
:class:`~.tolerance.ErrorScale`, from which the tolerance of every element at
every step follows.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable

import numpy as np

from radam_ref import RAdamConfig, StepSchedule, schedule

from .scenario import Group, Scenario
from .tolerance import ErrorScale

try:  # the spec's per-element update with explicit step scalars
    from radam_ref._step import _update_exact
except ImportError:  # pragma: no cover - kept in step with the spec
    _update_exact = None

__all__ = ["Oracle", "Trajectory", "exact_schedule", "flip_schedule", "run_oracle", "GROUP_MODELS"]

#: Parameter-group defects the oracle can model (for diagnosis only):
#:
#: ``("step_per_group",)``: one step counter per group, advanced on every step for
#:     every parameter of the group (a parameter whose gradient is None still
#:     counts the step; its bias corrections run ahead).
#: ``("shared_cache", fields)``: the step scalars of step t are cached in a ring of
#:     10 slots keyed by t (the authors' ``buffer``), computed with the ``fields``
#:     (hyperparameters among "lr", "betas") of whichever group reached step t
#:     first.  Groups built in the constructor whose betas differ from the first
#:     group's get their own cache; every other group, and every group added later,
#:     shares the first group's.
#: ``("first_group", field)``: every group steps with the first group's ``field``.
GROUP_MODELS = ("step_per_group", "shared_cache", "first_group")


def flip_schedule(sched: StepSchedule, config: RAdamConfig) -> StepSchedule | None:
    """The same step with the other threshold decision, or None if that branch does
    not exist (ρ_t ≤ 4: r_t is not real)."""
    if sched.rectified:
        return dataclasses.replace(sched, rectified=False, r_t=None)
    if sched.rho_t <= 4.0:
        return None
    rect = schedule(sched.t, beta1=config.beta1, beta2=config.beta2, threshold=4.0, comparison=">")
    return dataclasses.replace(sched, rectified=True, r_t=rect.r_t)


_SCHEDULES: dict = {}
_SCHEDULES_MAX = 400_000


def exact_schedule(config: RAdamConfig, t: int) -> StepSchedule:
    """``config.schedule(t)``, memoised for the life of the process (the spec's own
    cache is sized for training loops, not for re-running 10⁴-step oracles)."""
    key = (config.beta1, config.beta2, config.threshold, config.comparison, t)
    sched = _SCHEDULES.get(key)
    if sched is None:
        if len(_SCHEDULES) >= _SCHEDULES_MAX:
            _SCHEDULES.clear()
        sched = _SCHEDULES[key] = config.schedule(t)
    return sched


class _ParamState:
    __slots__ = ("p", "m", "v", "count", "err")

    def __init__(self, value: np.ndarray) -> None:
        self.p = np.array(value, dtype=np.float64)
        self.m = np.zeros_like(self.p)
        self.v = np.zeros_like(self.p)
        self.count = 0
        self.err = ErrorScale(self.p.shape)


class Oracle:
    """The spec applied to parameter groups (float64; complex values as real views).

    Args:
        groups: initial groups (their ``params`` as real float64 arrays).
        flips: ``{(group_index, t)}``: steps whose threshold decision is flipped.
        schedule_fn: ``(config, t) -> StepSchedule`` replacing the exact scalars.
    """

    def __init__(
        self,
        groups: Iterable[Group],
        *,
        flips: frozenset = frozenset(),
        schedule_fn: Callable | None = None,
        update_fn: Callable | None = None,
        group_model: tuple | None = None,
    ) -> None:
        self.flips = frozenset(flips)
        self.schedule_fn = schedule_fn
        self.update_fn = update_fn or _update_exact
        if group_model is not None and group_model[0] not in GROUP_MODELS:
            raise ValueError(f"group_model must start with one of {GROUP_MODELS}, got {group_model!r}")
        self.group_model = group_model
        self.configs: list[RAdamConfig] = []
        self.states: list[list[_ParamState]] = []
        self.group_counts: list[int] = []
        self.caches: list = []  # per group: the shared ring of 10 cache slots it uses
        self._constructed = False
        for group in groups:
            self.add_group(group)
        self._constructed = True

    def add_group(self, group: Group) -> None:
        config = group.config
        model = self.group_model
        if model is not None and model[0] == "shared_cache":
            if not self.caches:
                self.caches.append([None] * 10)
            elif self._constructed or config.betas == self.configs[0].betas:
                self.caches.append(self.caches[0])
            else:
                self.caches.append([None] * 10)
        self.configs.append(config)
        self.group_counts.append(0)
        self.states.append([_ParamState(p) for p in group.params])

    def _effective(self, gi: int, config: RAdamConfig, t: int) -> RAdamConfig:
        """The config whose scalars the modelled defect uses for group ``gi`` at step t."""
        model = self.group_model
        if model is None:
            return config
        if model[0] == "first_group":
            field = model[1]
            return config.replace(**{field: getattr(self.configs[0], field)})
        if model[0] == "shared_cache":
            ring = self.caches[gi]
            slot = ring[t % 10]
            if slot is not None and slot[0] == t:
                cached = slot[1]
                return config.replace(**{f: getattr(cached, f) for f in model[1]})
            ring[t % 10] = (t, config)
        return config

    def _schedule(self, gi: int, config: RAdamConfig, t: int) -> StepSchedule:
        sched = self.schedule_fn(config, t) if self.schedule_fn else exact_schedule(config, t)
        if (gi, t) in self.flips:
            flipped = flip_schedule(sched, config)
            if flipped is not None:
                sched = flipped
        return sched

    def step(self, grads) -> None:
        """One optimizer step: ``grads[group][param]`` is an array or None (skip)."""
        per_group = self.group_model is not None and self.group_model[0] == "step_per_group"
        for gi, (config, states, group_grads) in enumerate(zip(self.configs, self.states, grads)):
            self.group_counts[gi] += 1
            for st, g in zip(states, group_grads):
                if g is None:
                    continue
                g = np.asarray(g, dtype=np.float64)
                t = self.group_counts[gi] if per_group else st.count + 1
                used = self._effective(gi, config, t)
                sched = self._schedule(gi, used, t)
                sched_next = self._schedule(gi, used, t + 1) if config.nesterov else None
                # the moments always use the group's own betas; a modelled defect
                # changes only the step scalars (from ``used``) and the lr
                config_step = config if used.lr == config.lr else config.replace(lr=used.lr)
                with np.errstate(all="ignore"):
                    p, m, v = self.update_fn(np, config_step, sched, sched_next, st.p, g, st.m, st.v)
                st.err.update(config, sched, sched_next, t, st.p, g, v, p)
                st.p, st.m, st.v, st.count = p, m, v, t

    def params(self) -> list:
        return [[st.p.copy() for st in states] for states in self.states]

    def scales(self) -> list:
        return [[st.err.scale.copy() for st in states] for states in self.states]

    def moments(self) -> list:
        return [[(st.m.copy(), st.v.copy(), st.count) for st in states] for states in self.states]


@dataclasses.dataclass
class Trajectory:
    """Recorded values: ``steps[k]`` is the step number of ``values[k]`` (per group,
    per parameter, float64 real views) and ``scales[k]`` their error scales."""

    steps: list
    values: list
    scales: list


def run_oracle(scenario: Scenario, *, flips: frozenset = frozenset(), schedule_fn=None,
               real_groups=None, update_fn=None, group_model=None) -> Trajectory:
    """The oracle's trajectory over ``scenario`` (real views of complex values)."""
    from ._dtypes import real_view

    def real(group: Group) -> Group:
        return Group([real_view(p) for p in group.params], group.config)

    oracle = Oracle([real(g) for g in scenario.groups], flips=flips, schedule_fn=schedule_fn,
                    update_fn=update_fn, group_model=group_model)
    steps, values, scales = [], [], []
    for t in range(1, scenario.steps + 1):
        if t in scenario.added:
            oracle.add_group(real(scenario.added[t]))
        grads = [[None if g is None else real_view(g) for g in group] for group in scenario.grads_at(t)]
        oracle.step(grads)
        if scenario.recorded(t):
            steps.append(t)
            values.append(oracle.params())
            scales.append(oracle.scales())
    return Trajectory(steps, values, scales)
