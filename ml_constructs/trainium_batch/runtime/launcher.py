"""Build the ``torchrun`` command of one node from AWS Batch's multi-node environment.

Batch sets on every node of a multi-node parallel job:
``AWS_BATCH_JOB_NUM_NODES``, ``AWS_BATCH_JOB_NODE_INDEX``, ``AWS_BATCH_JOB_MAIN_NODE_INDEX``
and, on every node but the main one, ``AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS``.
A single-node job has none of them and runs as one node.

The main node reads its own address from the container's ``eth0``, and the Neuron
collectives' sockets are pinned to ``eth0`` with ``CCOM_SOCKET_IFNAME``, as the AWS Batch
scripts of aws-neuron-samples do (``torch-neuronx/training/aws-batch/all-reduce/docker/
allreduce.sh``): a multi-node container runs in ``awsvpc`` mode, where ``eth0`` is the
task's own network interface and ``ecs-eth0`` a link to the ECS agent that peers cannot
reach; resolving the host name may give either.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

RENDEZVOUS_PORT = 29500
# Every rank runs the program through this wrapper, which records its exception in torchrun's
# per-rank error file (trainium_runtime.worker).
WORKER = ("-m", "trainium_runtime.worker")
NEURON_COMM_PORT = 62182
SOCKET_IFNAME = "eth0"
# torchrun's static rendezvous waits 600 s for every node by default
# (torch/distributed/elastic/rendezvous/static_tcp_rendezvous.py, ``timeout`` in --rdzv-conf).
# The pre-flight barrier has already seen every node, so a late peer is a lost peer.
DEFAULT_RENDEZVOUS_TIMEOUT = 300
DEFAULT_CORES_PER_DEVICE = 2  # trn1: 2 NeuronCores per Trainium device


class LaunchError(ValueError):
    """The Batch environment is inconsistent: not retryable, the job definition is wrong."""


@dataclass(frozen=True)
class Rendezvous:
    num_nodes: int
    node_rank: int
    main_address: str
    processes_per_node: int
    timeout_seconds: int = DEFAULT_RENDEZVOUS_TIMEOUT

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
    timeout = _int(env, "RENDEZVOUS_TIMEOUT_SECONDS", DEFAULT_RENDEZVOUS_TIMEOUT)
    if timeout < 1:
        raise LaunchError(f"RENDEZVOUS_TIMEOUT_SECONDS must be >= 1, got {timeout}")
    # torchrun ranks nodes from 0 with the main node first, whatever Batch's main index is.
    node_rank = (node_index - main_index) % num_nodes
    return Rendezvous(num_nodes, node_rank, main_address, cores, timeout)


def torchrun_command(rendezvous: Rendezvous, program: Sequence[str]) -> list[str]:
    """``torchrun`` with a static rendezvous on the main node, then ``program`` under the worker wrapper."""
    if not program:
        raise LaunchError("no training program given")
    return [
        "torchrun",
        f"--nproc_per_node={rendezvous.processes_per_node}",
        f"--nnodes={rendezvous.num_nodes}",
        f"--node_rank={rendezvous.node_rank}",
        f"--master_addr={rendezvous.main_address}",
        f"--master_port={RENDEZVOUS_PORT}",
        f"--rdzv-conf=timeout={rendezvous.timeout_seconds}",
        *WORKER,
        *program,
    ]


def launch_environment(rendezvous: Rendezvous, env: Mapping[str, str]) -> dict[str, str]:
    """The environment for torchrun: the Neuron runtime's root communicator on the main node."""
    return {
        "CCOM_SOCKET_IFNAME": SOCKET_IFNAME,
        **env,
        "NEURON_RT_ROOT_COMM_ID": f"{rendezvous.main_address}:{NEURON_COMM_PORT}",
        "MASTER_ADDR": rendezvous.main_address,
        "MASTER_PORT": str(RENDEZVOUS_PORT),
    }


def interface_address(ifname: str) -> str:
    """The IPv4 address of network interface ``ifname`` (Linux ``SIOCGIFADDR``)."""
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            packed = fcntl.ioctl(probe.fileno(), 0x8915, struct.pack("256s", ifname.encode()[:15]))
        except OSError as exc:
            raise LaunchError(f"cannot read the IPv4 address of {ifname}: {exc}") from None
    return socket.inet_ntoa(packed[20:24])


def default_local_address(env: Mapping[str, str] | None = None) -> str:
    """This node's address on the interface the collectives use (``CCOM_SOCKET_IFNAME``, eth0)."""
    return interface_address((env or {}).get("CCOM_SOCKET_IFNAME") or SOCKET_IFNAME)
