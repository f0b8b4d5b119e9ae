"""Restarting what stopped: the restart policy (pure), and `tracker up`'s supervision of real child processes."""

from __future__ import annotations

import socket
import time

import pytest

from tests.helpers import eventually_sync
from tracker.settings import Settings
from tracker.supervision import RestartPolicy, child_env, exit_reason
from tracker.up import LocalSystem, _port_free, _watch


def test_the_delay_doubles_with_each_recent_exit_up_to_the_cap():
    policy = RestartPolicy(limit=None, window_s=60, first_delay_s=0.5, max_delay_s=10)
    ends: list[float] = []
    delays = []
    for at in range(8):
        ends.append(float(at))
        delays.append(policy.decide(ends, at))
    assert delays == [0.5, 1, 2, 4, 8, 10, 10, 10]


def test_more_than_limit_exits_within_the_window_is_a_crash_loop():
    policy = RestartPolicy(limit=3, window_s=60)
    assert policy.decide([0, 1, 2], 2) == 2  # three exits: still restarted
    assert policy.decide([0, 1, 2, 3], 3) is None  # the fourth within a minute: give up


def test_exits_spread_out_never_give_up_and_a_quiet_window_resets_the_delay():
    policy = RestartPolicy(limit=3, window_s=60)
    ends: list[float] = []
    for at in range(0, 3600, 100):  # one exit every 100 s for an hour
        ends = [*policy.recent(ends, at), at]
        assert policy.decide(ends, at) == 0.5
    assert len(ends) == 1  # what a caller keeps stays bounded


def test_never_giving_up_still_caps_the_delay_after_very_many_exits():
    policy = RestartPolicy(limit=None, window_s=1e9)
    assert policy.decide([0.0] * 5000, 0.0) == policy.max_delay_s


def test_exit_reasons_read_as_words():
    assert exit_reason(1) == "exit code 1"
    assert exit_reason(-9) == "killed by SIGKILL"
    assert exit_reason(-200) == "killed by signal 200"


def test_a_replay_secret_is_made_up_when_none_is_configured_and_children_get_it(tmp_path):
    system = LocalSystem(Settings(), tmp_path)
    secret = system.settings.replay_secret
    assert secret and len(secret) >= 32
    assert child_env(system.settings, "validate")["TRACKER_REPLAY_SECRET"] == secret
    assert LocalSystem(Settings(), tmp_path).settings.replay_secret != secret  # one per run
    configured = LocalSystem(Settings(replay_secret="shared-by-every-gateway"), tmp_path)
    assert configured.settings.replay_secret == "shared-by-every-gateway"


def supervise_until(system: LocalSystem, done, what: str, timeout_s: float = 30.0) -> list[str]:
    """Run the supervisor's rounds until ``done()`` holds (``what`` says what that is); returns their events."""
    events: list[str] = []

    def supervised_until_done() -> bool:
        events.extend(system.supervise())
        return done()

    eventually_sync(supervised_until_done, timeout_s=timeout_s, interval_s=0.05, what=what)
    return events


@pytest.fixture
def system(tmp_path):
    made = LocalSystem(Settings(restart_limit=2, restart_window_s=60), tmp_path)
    try:
        yield made
    finally:
        made.stop()


def test_a_child_that_keeps_failing_is_restarted_with_backoff_then_given_up(system):
    system.spawn("broken", ["no-such-command"])  # `tracker no-such-command` exits with code 2 at once
    started = time.monotonic()
    events = supervise_until(system, lambda: system.failed is not None, "the supervisor to give up")
    assert system.restarts == {"broken": 2}
    assert time.monotonic() - started >= 0.5 + 1  # the two waits before the restarts
    assert events[0].startswith("broken exited (exit code 2); restarting in 0.5 s")
    assert events[1].startswith("broken exited (exit code 2); restarting in 1 s")
    assert system.failed == (
        f"broken exited 3 times within 60 s (last: exit code 2); see {system.log_dir / 'broken.log'}"
    )
    assert system.supervise() == []  # given up: nothing is restarted any more
    assert system.restart_note() == "broken restarted 2× (last: exit code 2)"


def test_a_finished_child_is_left_alone_and_a_long_running_one_that_exits_is_restarted(system):
    system.spawn("finite", ["--version"], finite=True)  # exits 0: its work is done
    system.spawn("service", ["--version"])  # exits 0 too, but it should have kept running
    events = supervise_until(system, lambda: system.restarts["service"] == 1, "the service's restart")
    assert "finite finished" in events
    assert system.restarts == {"finite": 0, "service": 1}
    assert any(event.startswith("service exited (exit code 0); restarting") for event in events)


def test_tracker_up_stops_with_exit_code_1_on_a_crash_loop(system, capsys):
    system.spawn("validator-1", ["no-such-command"])
    assert _watch(system.settings, system, stop=[]) == 1
    out, err = capsys.readouterr()
    assert out.count("tracker up: validator-1 exited (exit code 2); restarting in") == 2
    assert err.strip().splitlines() == [f"tracker up: {system.failed}; stopping"]
    assert "validator-1" in err and "validator-1.log" in err


def test_children_get_only_the_secrets_they_need(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKER_OPERATOR_TOKENS", "alice:alice-token-1")
    system = LocalSystem(Settings(viewer_token="viewer-token-1"), tmp_path, token="admin-token-1")
    secrets = ("TRACKER_ADMIN_TOKEN", "TRACKER_OPERATOR_TOKENS", "TRACKER_VIEWER_TOKEN", "TRACKER_REPLAY_SECRET")
    gateway = child_env(system.settings, "gateway", system.token)
    assert gateway["TRACKER_ADMIN_TOKEN"] == "admin-token-1"
    assert all(name in gateway for name in secrets)
    validator = child_env(system.settings, "validate", system.token)
    assert [name for name in secrets if name in validator] == ["TRACKER_REPLAY_SECRET"]
    simulator = child_env(system.settings, "simulate", system.token)
    assert not [name for name in secrets if name in simulator]


def test_a_port_left_in_time_wait_by_the_previous_run_counts_as_free():
    # The previous gateway closed first after serving a client: its port sits in TIME_WAIT, which uvicorn's
    # SO_REUSEADDR bind accepts, so `tracker up` must not call it "in use".
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server side closes first: TIME_WAIT is on the server's port
    server.close()
    client.recv(1)
    client.close()
    with socket.socket() as plain, pytest.raises(OSError, match="Address already in use"):
        plain.bind(("127.0.0.1", port))  # what the check used to do
    assert _port_free("127.0.0.1", port)
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        assert not _port_free("127.0.0.1", listening.getsockname()[1])  # a port someone listens on is not
