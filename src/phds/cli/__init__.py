"""The ``phds`` command line: one command group per file."""
