"""Build the ``torchrun`` command of one node from AWS Batch's multi-node environment.

Batch sets on every node of a multi-node parallel job:
``AWS_BATCH_JOB_NUM_NODES``, ``AWS_BATCH_JOB_NODE_INDEX``, ``AWS_BATCH_JOB_MAIN_NODE_INDEX``
and, on every node but the main one, ``AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS``.
A single-node job has none of them and runs as one node.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

RENDEZVOUS_PORT = 29500
NEURON_COMM_PORT = 62182
DEFAULT_CORES_PER_DEVICE = 2  # trn1: 2 NeuronCores per Trainium device


class LaunchError(ValueError):
    """The Batch environment is inconsistent: not retryable, the job definition is wrong."""


@dataclass(frozen=True)
class Rendezvous:
    num_nodes: int
    node_rank: int
    main_address: str
    processes_per_node: int

    @property
    def is_main(self) -> bool:
        return self.node_rank == 0


def _int(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        if default is None:
            raise LaunchError(f"{name} is not set")
        return default
    try:
        return int(raw)
    except ValueError:
        raise LaunchError(f"{name} must be an integer, got {raw!r}") from None


def rendezvous_from_env(env: Mapping[str, str], local_address: Callable[[], str]) -> Rendezvous:
    """The rendezvous of this node; ``local_address`` gives the main node its own IP."""
    num_nodes = _int(env, "AWS_BATCH_JOB_NUM_NODES", 1)
    node_index = _int(env, "AWS_BATCH_JOB_NODE_INDEX", 0)
    main_index = _int(env, "AWS_BATCH_JOB_MAIN_NODE_INDEX", 0)
    if num_nodes < 1:
        raise LaunchError(f"AWS_BATCH_JOB_NUM_NODES must be >= 1, got {num_nodes}")
    for name, value in (("AWS_BATCH_JOB_NODE_INDEX", node_index), ("AWS_BATCH_JOB_MAIN_NODE_INDEX", main_index)):
        if not 0 <= value < num_nodes:
            raise LaunchError(f"{name} must be in 0..{num_nodes - 1}, got {value}")
    if node_index == main_index:
        main_address = local_address() if num_nodes > 1 else "127.0.0.1"
    else:
        main_address = env.get("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS", "")
        if not main_address:
            raise LaunchError("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS is not set on a worker node")
    devices = _int(env, "NEURON_DEVICE_COUNT", 16)
    cores = _int(env, "NEURON_CORES_PER_NODE", devices * DEFAULT_CORES_PER_DEVICE)
    # torchrun ranks nodes from 0 with the main node first, whatever Batch's main index is.
    node_rank = (node_index - main_index) % num_nodes
    return Rendezvous(num_nodes, node_rank, main_address, cores)


def torchrun_command(rendezvous: Rendezvous, program: Sequence[str]) -> list[str]:
    """``torchrun`` with a static rendezvous on the main node, then ``program``."""
    if not program:
        raise LaunchError("no training program given")
    return [
        "torchrun",
        f"--nproc_per_node={rendezvous.processes_per_node}",
        f"--nnodes={rendezvous.num_nodes}",
        f"--node_rank={rendezvous.node_rank}",
        f"--master_addr={rendezvous.main_address}",
        f"--master_port={RENDEZVOUS_PORT}",
        *program,
    ]


def launch_environment(rendezvous: Rendezvous, env: Mapping[str, str]) -> dict[str, str]:
    """The environment for torchrun: the Neuron runtime's root communicator on the main node."""
    return {
        **env,
        "NEURON_RT_ROOT_COMM_ID": f"{rendezvous.main_address}:{NEURON_COMM_PORT}",
        "MASTER_ADDR": rendezvous.main_address,
        "MASTER_PORT": str(RENDEZVOUS_PORT),
    }


def default_local_address() -> str:
    import socket

    return socket.gethostbyname(socket.gethostname())
