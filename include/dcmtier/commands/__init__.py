"""Sub-commands of the ``dcmtier`` command line, one module each."""
