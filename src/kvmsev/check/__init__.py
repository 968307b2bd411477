"""Observing the model: invariants, and (later) the explorer and counterexamples."""
