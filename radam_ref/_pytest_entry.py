"""The pytest entry point of the conformance suite (``pytest --radam-target ...``).

Installed packages' pytest plugins load in every pytest run, including runs of
projects that only use the spec.  So this entry point loads
:mod:`radam_ref.conformance.pytest_plugin` only when its extra (``cli``) is
installed; with the core install alone it adds nothing and pytest runs unaffected.
"""

from ._extras import EXTRAS, missing_modules

if not missing_modules(EXTRAS["cli"]):
    from radam_ref.conformance import pytest_plugin as _plugin

    globals().update({k: v for k, v in vars(_plugin).items() if not k.startswith("_")})
