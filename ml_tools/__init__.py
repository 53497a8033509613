"""Command-line tools for users of the deployed workloads: ``python -m ml_tools --help``."""
