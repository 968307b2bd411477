"""The ``kvmsev`` command line."""
