"""Robustness fuzzing for the ``kvmsev`` command line.

Whatever a user hands the tool -- a scenario file, a command line, a recorded host -- it must
answer (exit 0 or 1) or refuse with one ``kvmsev: error:`` line (exit 2); it must never print a
traceback, hang or run out of memory. :mod:`tests.fuzzing.strategies` generates such inputs,
:mod:`tests.fuzzing.harness` runs them in-process and checks that contract;
``tests/test_robustness.py`` runs a bounded sample with every ``make test`` and
``benchmarks/fuzz.py`` (``make fuzz``) runs as many as asked on every core.
"""
