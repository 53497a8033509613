"""Pre-flight checks on every node before training: fail fast, on a retryable exit code.

A node with missing Neuron devices, a broken EFA or failing collectives would hang
or crash the whole multi-node job hours later. The entrypoint exits with
``RETRYABLE_EXIT_CODE`` instead, which the job definition's retry strategy retries
(Batch places the new attempt on fresh hosts when the bad one is replaced).
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]
Globber = Callable[[str], list[str]]

# A tiny matmul on a NeuronCore: proves the device, driver and runtime work end to end.
TENSOR_CHECK = (
    "import torch, torch_xla.core.xla_model as xm\n"
    "d = xm.xla_device()\n"
    "t = torch.ones(64, 64, device=d) @ torch.ones(64, 64, device=d)\n"
    "xm.mark_step()\n"
    "assert float(t.sum().cpu()) == 64.0 ** 3, 'wrong matmul result'\n"
)
# Intra-node collectives over every NeuronCore (all-reduce, all-gather, reduce-scatter),
# each with --check (nccom-test verifies the results, not only the timing). The all-reduce's
# "Avg bus bandwidth" line is compared with a floor (Neuron docs, tools/neuron-sys-tools/nccom-test.rst).
COLLECTIVES = ("allr", "allg", "redsct")
# Where the EFA installer puts fi_info. The image's PATH includes it (the profile's
# Dockerfile adds it; the base image adds only /opt/aws/neuron/bin), and the probe falls
# back to it so an image built elsewhere does not fail every host with exit 127.
EFA_BIN = "/opt/amazon/efa/bin"
_BUSBW = re.compile(r"Avg bus bandwidth:\s*([0-9.]+)\s*GB/s")


def average_bus_bandwidth(output: str) -> float | None:
    """nccom-test's "Avg bus bandwidth: 40.69GB/s", in GB/s; None if absent."""
    match = _BUSBW.search(output)
    return float(match.group(1)) if match else None


def run_command(command: Sequence[str], timeout: int = 600) -> "subprocess.CompletedProcess[str]":
    try:
        return subprocess.run(list(command), capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        return subprocess.CompletedProcess(list(command), 127, "", str(exc))
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(list(command), 124, "", f"timed out after {timeout} s")


@dataclass(frozen=True)
class Preflight:
    """Which checks to run and what to expect (from the job definition's environment)."""

    neuron_devices: int
    efa_devices: int  # 0: no EFA expected (single-node jobs)
    neuron_cores: int
    collectives: bool = True
    busbw_floor_gbps: float = 0.0  # all-reduce "Avg bus bandwidth" below this fails the node

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, efa: bool, collectives: bool) -> "Preflight":
        devices = int(env.get("NEURON_DEVICE_COUNT", "16"))
        return cls(
            neuron_devices=devices,
            efa_devices=int(env.get("EFA_DEVICE_COUNT", "0")) if efa else 0,
            neuron_cores=int(env.get("NEURON_CORES_PER_NODE", str(devices * 2))),
            collectives=collectives,
            busbw_floor_gbps=float(env.get("NCCOM_BUSBW_FLOOR_GBPS", "0")),
        )

    def problems(self, run: Runner | None = None, find: Globber | None = None,
                 which: Callable[[str], str | None] | None = None) -> list[str]:
        """Every failed check, in order; empty when the node is healthy."""
        run = run or run_command
        find = find or glob.glob
        which = which or find_tool
        found = []
        devices = sorted(find("/dev/neuron*"))
        if len(devices) != self.neuron_devices:
            found.append(_device_problem("Neuron", "/dev/neuron", self.neuron_devices, devices,
                                         "the Neuron driver (aws-neuronx-dkms) on the host, and the job definition's devices"))
            return found  # nothing else can work without the devices
        result = run(["python3", "-c", TENSOR_CHECK])
        if result.returncode != 0:
            found.append(f"tensor check on a NeuronCore failed: {_tail(result)}")
        if self.efa_devices:
            uverbs = sorted(find("/dev/infiniband/uverbs*"))
            if len(uverbs) != self.efa_devices:
                found.append(_device_problem("EFA", "/dev/infiniband/uverbs", self.efa_devices, uverbs,
                                             "the EFA driver on the host (aws-efa-installer, the launch template's user data)"))
            fi_info = which("fi_info")
            if fi_info is None:
                found.append(f"fi_info is neither on PATH nor in {EFA_BIN}: the image lacks the EFA tools")
            else:
                result = run([fi_info, "-p", "efa"])
                if result.returncode != 0 or "provider: efa" not in result.stdout:
                    found.append(f"libfabric has no efa provider ({fi_info} -p efa): {_tail(result)}")
        if self.collectives:
            for operation in COLLECTIVES:
                command = ["nccom-test", "-r", str(self.neuron_cores), "-b", "8", "-e", "64M", "-f", "4", "--check", operation]
                result = run(command)
                if result.returncode != 0:
                    found.append(f"nccom-test {operation} over {self.neuron_cores} NeuronCores failed: {_tail(result)}")
                elif operation == "allr" and self.busbw_floor_gbps > 0:
                    busbw = average_bus_bandwidth(result.stdout)
                    if busbw is None or busbw < self.busbw_floor_gbps:
                        found.append(
                            f"nccom-test allr bus bandwidth {busbw} GB/s is below the floor of "
                            f"{self.busbw_floor_gbps} GB/s (NCCOM_BUSBW_FLOOR_GBPS)"
                        )
        return found


def find_tool(name: str) -> str | None:
    """``name`` on PATH, else in the EFA installer's folder; None when neither has it."""
    found = shutil.which(name)
    if found:
        return found
    candidate = os.path.join(EFA_BIN, name)
    return candidate if os.access(candidate, os.X_OK) else None


def _device_problem(kind: str, prefix: str, expected: int, present: list[str], owner: str) -> str:
    """Which of ``prefix0 .. prefix<expected-1>`` are missing (or extra), and what provides them."""
    wanted = {f"{prefix}{i}" for i in range(expected)}
    missing = sorted(wanted - set(present), key=lambda d: int(d[len(prefix):]))
    extra = sorted(set(present) - wanted)
    detail = f"missing {', '.join(missing)}" if missing else "none missing"
    if extra:
        detail += f"; unexpected {', '.join(extra)}"
    return f"expected {expected} {kind} devices, found {len(present)} ({detail}): check {owner}"


def _tail(result: "subprocess.CompletedProcess[str]") -> str:
    text = (result.stderr or result.stdout or "").strip()
    return f"exit {result.returncode}: {text[-300:]}"
