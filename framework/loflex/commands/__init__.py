"""Sub-commands of the ``loflex`` CLI, one module per group."""
