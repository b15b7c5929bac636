"""Reproductions of the paper's analysis: figures, simulations and experiments."""

from radam_ref._extras import require

require("radam_ref.paper", "paper")  # one line naming the extra, not a bare ModuleNotFoundError
