"""On-demand benchmarks (``make bench``); never run by the test suite."""
