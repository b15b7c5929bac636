"""Fast adapters of the spec (installed as ``radam_ref.backends``).

Each backend performs the same math as :func:`radam_ref.step`, in place and fused,
and is property-tested against it.  Backends take their step scalars from
:func:`radam_ref.schedule`; they never re-derive them.
"""
