"""Reusable CDK constructs for ML workloads on AWS accelerators.

Named ``ml_constructs`` so that it never shadows the ``constructs`` library.
"""
