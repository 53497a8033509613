"""A cluster-wide pre-flight barrier for AWS Batch multi-node jobs.

Batch decides a multi-node job's status, and whether it is retried, from the main
node alone: a child that fails and exits changes nothing (AWS Batch user guide,
"Multi-node parallel jobs"). So every node reports its pre-flight result to the
main node, which waits for all of them and then answers each with one verdict:
go (all healthy) or stop. The main node exits with the retryable code when any
node failed or never reported, which is what makes Batch try again.

Wire format: one JSON line each way over TCP on the job's private network
(``{"node": 3, "problems": [...]}`` in, ``{"go": true}`` out). Standard library only.
"""
from __future__ import annotations

import json
import logging
import selectors
import socket
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

LOG = logging.getLogger("trainium_runtime.barrier")
BARRIER_PORT = 29400
MAX_MESSAGE_BYTES = 64 * 1024


@dataclass(frozen=True)
class BarrierResult:
    """What the main node learned: which nodes failed (with why) and which never reported."""

    failed: dict[int, list[str]] = field(default_factory=dict)
    missing: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failed and not self.missing

    def summary(self) -> str:
        parts = [f"node {n}: {'; '.join(p)}" for n, p in sorted(self.failed.items())]
        if self.missing:
            parts.append(f"no report from node(s) {', '.join(map(str, self.missing))}")
        return " | ".join(parts) or "every node passed"


def gather(
    num_nodes: int,
    own_node: int,
    own_problems: Sequence[str],
    *,
    port: int = BARRIER_PORT,
    timeout: float = 900.0,
    bind_address: str = "0.0.0.0",
    clock: Callable[[], float] = time.monotonic,
    ready: Callable[[int], None] | None = None,
) -> BarrierResult:
    """Main node: collect one report per other node until all arrived or ``timeout``,
    then send every connected node the verdict. ``ready(port)`` is called once listening."""
    failed: dict[int, list[str]] = {own_node: list(own_problems)} if own_problems else {}
    expected = set(range(num_nodes)) - {own_node}
    reported: dict[int, socket.socket] = {}
    buffers: dict[socket.socket, bytes] = {}
    deadline = clock() + timeout
    with socket.create_server((bind_address, port), reuse_port=False) as server, selectors.DefaultSelector() as sel:
        server.setblocking(False)
        sel.register(server, selectors.EVENT_READ)
        if ready is not None:
            ready(server.getsockname()[1])
        while not expected <= set(reported) and clock() < deadline:
            for key, _ in sel.select(timeout=max(0.0, min(1.0, deadline - clock()))):
                if key.fileobj is server:
                    conn, _ = server.accept()
                    conn.setblocking(False)
                    buffers[conn] = b""
                    sel.register(conn, selectors.EVENT_READ)
                    continue
                conn = key.fileobj
                assert isinstance(conn, socket.socket)
                chunk = _recv(conn)
                if chunk is None:
                    continue
                buffers[conn] += chunk
                if b"\n" not in buffers[conn] and chunk and len(buffers[conn]) < MAX_MESSAGE_BYTES:
                    continue
                sel.unregister(conn)
                report = _parse_report(buffers.pop(conn))
                if report is None or report[0] not in expected:
                    LOG.warning("barrier: ignoring a malformed or unexpected report")
                    conn.close()
                    continue
                node, problems = report
                if node in reported:  # a restarted container reports again: keep the newest
                    reported[node].close()
                reported[node] = conn
                if problems:
                    failed[node] = problems
                else:
                    failed.pop(node, None)
        for conn in buffers:
            conn.close()
        result = BarrierResult(failed=failed, missing=tuple(sorted(expected - set(reported))))
        verdict = (json.dumps({"go": result.ok}) + "\n").encode()
        for conn in reported.values():
            try:
                conn.setblocking(True)
                conn.sendall(verdict)
            except OSError as exc:  # that node is gone; the verdict no longer matters to it
                LOG.warning("barrier: could not send the verdict: %s", exc)
            finally:
                conn.close()
    return result


def report(
    main_address: str,
    node: int,
    problems: Sequence[str],
    *,
    port: int = BARRIER_PORT,
    timeout: float = 900.0,
    retry_interval: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Child node: send this node's result to the main node and wait for its verdict.

    Retries the connection until ``timeout`` (the main node may still be starting).
    True only when the main node answered go; False on stop, silence or no connection."""
    deadline = clock() + timeout
    message = (json.dumps({"node": node, "problems": list(problems)}) + "\n").encode()
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            LOG.error("barrier: main node %s:%d did not answer within %.0f s", main_address, port, timeout)
            return False
        try:
            with socket.create_connection((main_address, port), timeout=min(remaining, 10.0)) as conn:
                conn.sendall(message)
                conn.settimeout(max(0.1, deadline - clock()))
                answer = b""
                while b"\n" not in answer:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    answer += chunk
            return bool(json.loads(answer.decode() or "{}").get("go", False))
        except (ConnectionRefusedError, ConnectionResetError, socket.gaierror) as exc:
            LOG.info("barrier: main node not listening yet (%s); retrying", exc)
            sleep(retry_interval)
        except (OSError, ValueError) as exc:
            LOG.error("barrier: no verdict from the main node: %s", exc)
            return False


def _recv(conn: socket.socket) -> bytes | None:
    """Bytes read, b"" when the peer closed, None when nothing is there yet."""
    try:
        return conn.recv(4096)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""


def _parse_report(raw: bytes) -> tuple[int, list[str]] | None:
    try:
        data = json.loads(raw.split(b"\n", 1)[0].decode())
        node = data["node"]
        problems = data.get("problems", [])
        if not isinstance(node, int) or not isinstance(problems, list):
            return None
        return node, [str(p) for p in problems]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
