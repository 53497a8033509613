"""Container runtime of the Trainium jobs (installed as ``trainium_runtime`` in the image).

``entrypoint`` (pre-flight checks, then the workload), ``launcher`` (torchrun from
Batch's multi-node environment), ``preflight``, ``checkpoints`` (S3 checkpoints
with completion markers) and ``train_reference`` (a PyTorch/XLA example).
"""
