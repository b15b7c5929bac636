"""Optimizer state that counts its own mutations, so a cached kernel table can tell in
O(1) whether any state dict or state tensor was replaced since it was built.

``RAdam.state`` is a :class:`TrackedState` (a ``defaultdict``, as torch's) whose
values are :class:`TrackedDict` s; every mutating method of either bumps one shared
:class:`MutationCounter`.  Replacing ``optimizer.state`` itself (as
``load_state_dict`` does) is seen by identity.  Plain dicts put in by other code
are tracked from then on: assigning one bumps the counter; its own later
mutations are caught because a table is only cached while every per-parameter
state is a :class:`TrackedDict`.
"""

from __future__ import annotations

import collections

__all__ = ["MutationCounter", "TrackedDict", "TrackedState", "tracked"]


class MutationCounter:
    """A number that grows with every mutation of the state it is attached to."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


def _bumping(name: str):
    method = getattr(dict, name)

    def wrapper(self, *args, **kwargs):
        counter = self.__dict__.get("counter")
        if counter is not None:
            counter.value += 1
        return method(self, *args, **kwargs)

    wrapper.__name__ = name
    wrapper.__doc__ = method.__doc__
    return wrapper


_MUTATORS = ("__setitem__", "__delitem__", "__ior__", "update", "setdefault", "pop",
             "popitem", "clear")


class TrackedDict(dict):
    """The state of one parameter (``step``, ``exp_avg``, ``exp_avg_sq``)."""

    def __init__(self, *args, counter: MutationCounter | None = None, **kwargs) -> None:
        self.counter = counter
        super().__init__(*args, **kwargs)

    def __reduce_ex__(self, protocol):  # pickles and deep-copies as a plain dict
        return (dict, (dict(self),))


class TrackedState(collections.defaultdict):
    """``optimizer.state``: parameter → :class:`TrackedDict`."""

    def __init__(self, counter: MutationCounter | None = None) -> None:
        counter = counter if counter is not None else MutationCounter()
        super().__init__(lambda: TrackedDict(counter=counter))
        self.counter = counter

    def __reduce_ex__(self, protocol):  # pickles and deep-copies as torch's defaultdict(dict)
        return (_plain_state, (dict(self),))


def _plain_state(items: dict):
    state = collections.defaultdict(dict)
    state.update(items)
    return state


for _name in _MUTATORS:
    setattr(TrackedDict, _name, _bumping(_name))
    setattr(TrackedState, _name, _bumping(_name))


def tracked(state) -> TrackedState:
    """``state`` (a mapping parameter → dict) as a :class:`TrackedState` (the inner
    dicts become :class:`TrackedDict` s holding the same values)."""
    if isinstance(state, TrackedState):
        return state
    out = TrackedState()
    for key, value in state.items():
        dict.__setitem__(out, key, TrackedDict(value, counter=out.counter)
                         if isinstance(value, dict) else value)
    return out
