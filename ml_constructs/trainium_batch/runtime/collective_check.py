"""Cross-node collective check: one all-reduce over every NeuronCore of every node.

``nccom-test`` benchmarks across instances only through MPI over SSH or Slurm (Neuron
docs, ``tools/neuron-sys-tools/nccom-test.rst``, "MPI Execution"), neither of which a Batch
container has. This program runs under the same ``torchrun`` as training, right after the
pre-flight barrier, so it exercises exactly the path training uses (torchrun rendezvous,
the Neuron root communicator, EFA): every rank contributes ``rank + 1``, every rank checks
the sum ``n (n + 1) / 2`` (like ``nccom-test --check``), and rank 0 compares the bus
bandwidth of a large all-reduce with a floor. A failure prints ``COLLECTIVE CHECK FAILED``,
which the entrypoint's supervisor maps to the retryable exit code.

    torchrun ... -m trainium_runtime.collective_check --mib 256 --iters 5 --floor-gbps 5
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

FAILURE_MARKER = "COLLECTIVE CHECK FAILED"


def expected_sum(world_size: int) -> float:
    return world_size * (world_size + 1) / 2


def bus_bandwidth_gbps(nbytes: int, seconds: float, world_size: int) -> float:
    """All-reduce bus bandwidth as nccom-test and nccl-tests define it: algbw x 2(n-1)/n."""
    if seconds <= 0 or world_size < 1:
        raise ValueError("seconds and world_size must be positive")
    return nbytes / seconds / 1e9 * (2 * (world_size - 1) / world_size)


def verdict(sum_ok: bool, busbw: float, floor: float) -> str | None:
    """None when healthy, else why the cluster failed the check."""
    if not sum_ok:
        return "all-reduce returned a wrong sum"
    if floor > 0 and busbw < floor:
        return f"bus bandwidth {busbw:.2f} GB/s is below the floor of {floor} GB/s"
    return None


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - needs Trainium
    parser = argparse.ArgumentParser(prog="trainium_runtime.collective_check")
    parser.add_argument("--mib", type=int, default=256, help="all-reduce size per rank")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--floor-gbps", type=float, default=0.0)
    args = parser.parse_args(argv)
    import torch
    import torch.distributed as dist
    import torch_xla.core.xla_model as xm
    import torch_xla.distributed.xla_backend  # noqa: F401  registers the "xla" backend

    dist.init_process_group("xla")
    device = xm.xla_device()
    rank, world = dist.get_rank(), dist.get_world_size()
    small = torch.full((1024,), float(rank + 1), device=device)
    xm.all_reduce(xm.REDUCE_SUM, [small])
    sum_ok = bool(torch.all(small.cpu() == expected_sum(world)))
    elements = args.mib * 1024 * 1024 // 4
    big = torch.ones(elements, dtype=torch.float32, device=device)
    xm.all_reduce(xm.REDUCE_SUM, [big])  # warm-up: compile and connect
    xm.mark_step()
    xm.wait_device_ops()
    start = time.monotonic()
    for _ in range(args.iters):
        xm.all_reduce(xm.REDUCE_SUM, [big])
        xm.mark_step()
    xm.wait_device_ops()
    busbw = bus_bandwidth_gbps(elements * 4 * args.iters, time.monotonic() - start, world)
    problem = verdict(sum_ok, busbw, args.floor_gbps)
    if rank == 0:
        print(f"collective check: {world} ranks, all-reduce bus bandwidth {busbw:.2f} GB/s", flush=True)
    if problem:
        print(f"{FAILURE_MARKER} on rank {rank}: {problem}", flush=True)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
