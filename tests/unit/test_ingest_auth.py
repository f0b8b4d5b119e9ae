"""Device credentials (unit): what a request presents, the token cache's bound on a revoke, the id and token
rules, and the one-line errors of ``tracker devices`` and ``tracker ingest``."""

from __future__ import annotations

import asyncio
import base64
import re
from typing import cast

import pytest

from tracker import cli
from tracker.ingest import devices
from tracker.ingest.auth import Authenticator, Credentials, credentials
from tracker.store import DeviceRecord, Store


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("authorization", "token_param", "expected"),
    [
        ("Bearer abc", None, Credentials("abc")),
        ("bearer   abc  ", "other", Credentials("abc")),  # the header wins over the URL's token
        (basic("courier-1", "tok"), None, Credentials("tok", "courier-1")),
        (basic("courier-1", "to:k"), None, Credentials("to:k", "courier-1")),  # only the first ':' splits
        (basic("courier-1", ""), None, Credentials(None, "courier-1")),  # a user alone proves nothing
        (None, "tok", Credentials("tok")),
        (None, None, Credentials()),
        ("", None, Credentials()),
        ("Basic %%%", None, Credentials(malformed=True)),  # not base64
        ("Basic " + base64.b64encode(b"\xff:\xfe").decode(), None, Credentials(malformed=True)),  # not UTF-8
        ("Basic " + base64.b64encode(b"no-colon").decode(), None, Credentials(malformed=True)),
        ("Digest x", None, Credentials(malformed=True)),
        ("Bearer", None, Credentials(malformed=True)),
    ],
)
def test_credentials_are_read_from_whichever_place_the_app_can_put_them(authorization, token_param, expected) -> None:
    assert credentials(authorization, token_param) == expected


class Registry:
    """Stands in for the Store's device registry: token digest -> device, and how often it was asked."""

    def __init__(self) -> None:
        self.by_digest: dict[str, str] = {}
        self.asked = 0
        self.down = False

    def add(self, device: str, token: str) -> None:
        self.by_digest[devices.token_digest(token)] = device

    async def device_by_token(self, digest: str) -> tuple[str, DeviceRecord] | None:
        self.asked += 1
        await asyncio.sleep(0.01)
        if self.down:
            raise OSError("connection refused")
        device = self.by_digest.get(digest)
        return None if device is None else (device, DeviceRecord(digest, 0))


async def test_a_token_is_looked_up_once_per_cache_period_and_a_revoke_holds_within_it() -> None:
    now = [100.0]
    registry = Registry()
    registry.add("alice", "tok-a")
    auth = Authenticator(cast("Store", registry), cache_s=5.0, clock=lambda: now[0])
    assert await auth.device("tok-a") == "alice"
    assert await auth.device("nope") is None
    assert registry.asked == 2
    registry.by_digest.clear()  # revoked
    now[0] += 4.9
    assert await auth.device("tok-a") == "alice"  # still cached: within the bound
    assert await auth.device("nope") is None  # refusals are cached too
    assert registry.asked == 2
    now[0] += 0.2
    assert await auth.device("tok-a") is None  # past the bound: refused
    assert registry.asked == 3


async def test_concurrent_requests_of_one_device_share_one_lookup_and_errors_are_not_cached() -> None:
    registry = Registry()
    registry.add("alice", "tok-a")
    auth = Authenticator(cast("Store", registry), cache_s=5.0)
    assert await asyncio.gather(*(auth.device("tok-a") for _ in range(50))) == ["alice"] * 50
    assert registry.asked == 1
    registry.down = True
    with pytest.raises(OSError, match="refused"):
        await auth.device("tok-b")
    registry.down = False
    assert await auth.device("tok-b") is None  # asked again: the outage was not remembered as a refusal
    assert registry.asked == 3


def test_a_token_has_256_random_bits_in_url_safe_characters_and_only_its_digest_is_kept() -> None:
    tokens = {devices.new_token() for _ in range(100)}
    assert len(tokens) == 100
    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    digest = devices.token_digest("abc")
    assert digest == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # SHA-256, hex


@pytest.mark.parametrize(
    ("device_id", "problem"),
    [
        ("courier-17", None),
        ("ಕೊರಿಯರ್ 7", None),  # any printable text, as a partner_id
        ("", "1-64 characters"),
        ("x" * 65, "1-64 characters"),
        ("a:b", "':'"),
        (" padded", "leading or trailing"),
        ("tab\there", "printable"),
    ],
)
def test_a_device_id_is_a_partner_id_that_http_basic_can_carry(device_id: str, problem: str | None) -> None:
    found = devices.id_problem(device_id)
    assert found is None if problem is None else problem in (found or "")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["devices", "add", "a:b", "--redis-url", "redis://127.0.0.1:1/0"], "cannot hold ':'"),
        (["devices", "add"], "the following arguments are required: ID"),
        (["devices", "frobnicate"], "invalid choice: 'frobnicate'"),
        (["ingest", "--port", "x"], "expected a whole number, got 'x'"),
        (["ingest", "--auth", "none"], "invalid choice: 'none'"),
        (["up", "--ingest-port", "99999"], "ingest_port must be 0-65535"),
    ],
)
def test_bad_flags_and_ids_get_one_line(argv: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exited:  # argparse's own errors exit; ours return 2
        raise SystemExit(cli.main(argv))
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
