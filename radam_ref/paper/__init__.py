"""Reproductions of the paper's analysis: figures, simulations and experiments."""
