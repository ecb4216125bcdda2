"""The `paysys` command line (and, later, the Python client)."""
