"""An embedded Redis Cluster for tests and laptops: 3 masters, no replicas, from the same redis-server binary as
the single embedded Redis, on free loopback ports (``TRACKER_EMBEDDED_REDIS=cluster``; make test-cluster).

Why 3 masters and no replicas: it is the smallest cluster Redis accepts as one (``redis-cli --cluster create``
asks for 3), and what the product must get right on a cluster is where keys live (every script's keys in one
slot, readers fanning out over the nodes), not failover, which is Redis's own. Slots are split evenly, as
``redis-cli --cluster create`` does. The nodes are joined here (CLUSTER ADDSLOTS, then CLUSTER MEET) rather
than by redis-cli, so that nothing asks a question on a terminal, and the cluster is ready when every node says
``cluster_state:ok`` and knows the other two.

Redis before 7 puts a node's cluster bus on its port + 10000 (the wheel's redis-server is 6.2), so a node's
port is taken only when that one is free too.
"""

from __future__ import annotations

import socket
import time

from tracker.local.processes import free_ports

SLOTS = 16384
NODES = 3
BUS_OFFSET = 10_000  # the cluster bus port, before Redis 7's cluster-port


class ClusterSetupError(RuntimeError):
    """The nodes started but did not become one cluster; the message is one line."""


def node_ports(count: int = NODES, host: str = "127.0.0.1") -> list[int]:
    """``count`` free ports whose cluster bus ports (+10000) are free as well."""
    chosen: list[int] = []
    for _ in range(50):
        for port in free_ports(count * 2, host):
            if port in chosen or port + BUS_OFFSET > 65_535 or not _free(host, port + BUS_OFFSET):
                continue
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise ClusterSetupError(f"found no {count} free loopback ports with free cluster bus ports")


def _free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def node_argv(server: str, port: int, run_dir: str, log_path: str) -> list[str]:
    """One node: a cluster member with no snapshots and no append-only file (like the single embedded Redis)."""
    return [
        server,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        f"nodes-{port}.conf",
        "--cluster-node-timeout",
        "5000",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        run_dir,
        "--dbfilename",
        f"dump-{port}.rdb",
        "--logfile",
        log_path,
    ]


def slot_ranges(count: int = NODES) -> list[range]:
    """The slots of each node: evenly split, the first nodes taking one more when it does not divide."""
    size, extra = divmod(SLOTS, count)
    ranges, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        ranges.append(range(start, end))
        start = end
    return ranges


def command(port: int, *args: str | int, timeout_s: float = 5.0) -> bytes:
    """Send one command (RESP) to the node on ``port``; its reply's first line (a bulk string's body for ``$``)."""
    parts = [str(arg).encode() for arg in args]
    payload = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(part), part) for part in parts)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(payload)
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        head, _, rest = reply.partition(b"\r\n")
        if head.startswith(b"-"):
            raise ClusterSetupError(f"node {port}: {args[0]} {args[1] if len(args) > 1 else ''}: {head[1:].decode()}")
        if head.startswith(b"$") and int(head[1:]) >= 0:
            size = int(head[1:])
            while len(rest) < size:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
            return rest[:size]
        return head


def form(ports: list[int], timeout_s: float) -> None:
    """Make the running nodes on ``ports`` one cluster: slots split evenly, every node met; returns once every
    node serves the whole map."""
    for port, slots in zip(ports, slot_ranges(len(ports)), strict=True):
        command(port, "CLUSTER", "ADDSLOTS", *slots)
    for port in ports[1:]:
        command(ports[0], "CLUSTER", "MEET", "127.0.0.1", port)
    deadline = time.monotonic() + timeout_s
    while True:
        states = [_state(port) for port in ports]
        if all(ok and known == len(ports) for ok, known in states):
            return
        if time.monotonic() > deadline:
            raise ClusterSetupError(f"Redis Cluster on ports {ports} not formed after {timeout_s:g} s: {states}")
        time.sleep(0.1)


def _state(port: int) -> tuple[bool, int]:
    """Whether the node says the cluster is ok, and how many nodes it knows."""
    info = command(port, "CLUSTER", "INFO").decode()
    fields = dict(line.split(":", 1) for line in info.split("\r\n") if ":" in line)
    return fields.get("cluster_state") == "ok", int(fields.get("cluster_known_nodes", "0"))


def url(ports: list[int]) -> str:
    """The REDIS_URL of the cluster (tracker/settings.py, redis-cluster://)."""
    return "redis-cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports)
