"""The ``rnnkit`` command line; each verb is a thin face of a Python API function."""
