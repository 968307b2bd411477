"""Scenario files: a host and a sequence of entry points, run step by step with a trace."""
