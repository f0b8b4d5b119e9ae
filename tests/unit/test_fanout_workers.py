"""``tracker gateway --workers N``: each worker binds the one port with SO_REUSEPORT, and a port the workers
could not share is refused up front. (The workers themselves are whole gateways: bench/fanout.py runs them.)"""

from __future__ import annotations

import errno
import socket

import pytest

from tests.helpers import run_tracker
from tracker.workers import reuse_port_socket


def test_workers_share_a_port_that_a_plain_socket_cannot_take():
    first = reuse_port_socket("127.0.0.1", 0)
    port = first.getsockname()[1]
    second = reuse_port_socket("127.0.0.1", port)
    try:
        first.listen()
        second.listen()
        with socket.socket() as plain, pytest.raises(OSError, match="in use") as refused:
            plain.bind(("127.0.0.1", port))
        assert refused.value.errno == errno.EADDRINUSE
    finally:
        first.close()
        second.close()


def test_workers_need_a_fixed_port():
    answer = run_tracker(
        "gateway", "--workers", "2", "--port", "0", env={"KAFKA_BOOTSTRAP_SERVERS": "x:1", "REDIS_URL": "redis://x"}
    )
    assert answer.returncode == 2
    assert b"--workers needs a fixed --port" in answer.stderr
