"""``tracker simulate --via-ingest``: every fix reaches the ingest in each courier's order; a 503 or 429 is
retried like a phone would, a 401 stops the run with one line, a refused fix is counted as unsent; and its
flags fail with one line. The ingest here is an HTTP handler that reads requests with the ingest's own
protocol parsers (no broker: what the ingest does with a fix is tested with the ingest)."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import defaultdict
from collections.abc import Callable
from urllib.parse import parse_qsl

import httpx
import pytest

from simulator import via_ingest
from simulator.cli import add_arguments, config_from_args, target_from_args
from simulator.config import SimConfig
from simulator.phones import PhoneProtocol
from simulator.via_ingest import IngestRefused, IngestTarget, run_via_ingest
from tracker.ingest import protocols
from tracker.settings import Settings

SETTINGS = Settings()
URL = "http://ingest.test:5055"


class Ingest:
    """Answers like `tracker ingest`; ``answer(request_number)`` may replace the 200 with another response."""

    def __init__(self, answer: Callable[[int], httpx.Response | None] = lambda n: None) -> None:
        self.answer = answer
        self.requests = 0
        self.fixes: dict[str, list[dict]] = defaultdict(list)  # courier -> fixes, in arrival order
        self.authorization: set[str | None] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        self.authorization.add(request.headers.get("authorization"))
        refused = self.answer(self.requests)
        if refused is not None:
            return refused
        if request.url.path == "/v1/pings":
            pings = protocols.native(json.loads(request.content), SETTINGS.ingest_max_pings)
            assert not isinstance(pings, str)
            for ping in pings:
                self.fixes[ping["partner_id"]].append(ping)
            return httpx.Response(200, json={"produced": len(pings)})
        if request.url.path == "/owntracks":
            fix = protocols.owntracks(json.loads(request.content))
            assert fix is not None
            self.fixes[request.headers["x-limit-u"]].append(fix.ping)
            return httpx.Response(200, content=b"[]")
        params = dict(parse_qsl(request.url.query.decode(), keep_blank_values=True))
        params.pop("token", None)
        osmand = protocols.osmand(params)
        assert osmand.device_id is not None
        self.fixes[osmand.device_id].append(osmand.ping)
        return httpx.Response(200)


def client(ingest: Ingest) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=URL, transport=httpx.MockTransport(ingest))


@pytest.fixture
def quick_retries(monkeypatch):
    monkeypatch.setattr(via_ingest, "RETRY_FIRST_S", 0.01)
    monkeypatch.setattr(via_ingest, "RETRY_MAX_S", 0.02)


@pytest.mark.parametrize("protocol", list(PhoneProtocol))
async def test_every_fix_arrives_in_each_couriers_order(protocol):
    ingest = Ingest()
    config = SimConfig(couriers=40, count=400, burst=True, bad_rate=0, seed=3, id_prefix="east-")
    tokens = {f"east-{n:04d}": f"token-{n}" for n in range(1, 41)}
    stats = await run_via_ingest(
        SETTINGS, config, IngestTarget(URL, protocol, tokens, concurrency=8), client=client(ingest)
    )
    assert stats.produced == sum(len(fixes) for fixes in ingest.fixes.values()) == 400
    assert (stats.unsent, stats.retries) == (0, 0)
    assert sorted(ingest.fixes) == sorted(tokens)
    for fixes in ingest.fixes.values():
        assert [fix["ts"] for fix in fixes] == sorted(fix["ts"] for fix in fixes)
    if protocol is PhoneProtocol.NATIVE:
        assert ingest.requests <= 40  # a courier's pings of one batch go in one request
        assert all(value is not None and value.startswith("Bearer token-") for value in ingest.authorization)
    else:
        assert ingest.requests == 400


async def test_a_503_or_429_is_retried_and_nothing_is_lost(quick_retries):
    busy = {1: 503, 2: 503, 3: 429, 10: 502}
    ingest = Ingest(lambda n: httpx.Response(busy[n], headers={"retry-after": "0"}) if n in busy else None)
    stats = await run_via_ingest(
        SETTINGS, SimConfig(couriers=5, count=50, burst=True, seed=4), IngestTarget(URL), client=client(ingest)
    )
    assert (stats.produced, stats.unsent, stats.retries) == (50, 0, 4)
    assert ingest.requests == 54


async def test_a_fix_refused_for_too_long_is_unsent_with_the_answer(quick_retries, monkeypatch):
    monkeypatch.setattr(via_ingest, "DELIVERY_TIMEOUT_S", 0.2)
    ingest = Ingest(lambda n: httpx.Response(503, json={"error": "not written: broker down; try again"}))
    stats = await run_via_ingest(
        SETTINGS, SimConfig(couriers=3, count=6, burst=True, seed=5), IngestTarget(URL), client=client(ingest)
    )
    assert (stats.produced, stats.unsent) == (0, 6)
    assert stats.retries > 6
    assert stats.unsent_by_reason == {"IngestAnswer: HTTP 503: not written: broker down; try again": 6}


async def test_a_fix_the_ingest_refuses_outright_is_unsent_and_not_resent():
    ingest = Ingest(lambda n: httpx.Response(400, json={"error": "the body is not JSON"}) if n == 1 else None)
    stats = await run_via_ingest(
        SETTINGS, SimConfig(couriers=4, count=20, burst=True, seed=6), IngestTarget(URL), client=client(ingest)
    )
    assert (stats.produced, stats.unsent, stats.retries, ingest.requests) == (19, 1, 0, 20)


async def test_a_stop_while_retrying_leaves_the_fix_unsent(quick_retries):
    stop = asyncio.Event()

    def answer(n: int) -> httpx.Response:
        if n > 20:
            stop.set()
        return httpx.Response(503)

    stats = await run_via_ingest(
        SETTINGS,
        SimConfig(couriers=2, count=100, burst=True, seed=7),
        IngestTarget(URL),
        stop=stop,
        client=client(Ingest(answer)),
    )
    assert (stats.produced, stats.unsent) == (0, 2)  # each courier's fix being retried; nothing after the stop
    assert stats.unsent_by_reason == {"IngestAnswer: HTTP 503": 2}


@pytest.mark.parametrize(("status", "says"), [(401, "'s credentials (check --tokens"), (404, "no such route")])
async def test_an_answer_every_request_would_get_stops_the_run_with_one_line(status, says):
    ingest = Ingest(lambda n: httpx.Response(status, json={"error": "unknown or revoked device token"}))
    target = IngestTarget(URL, PhoneProtocol.OWNTRACKS, {f"east-{n:04d}": "s3cret" for n in range(1, 4)})
    with pytest.raises(IngestRefused) as refused:
        await run_via_ingest(
            SETTINGS, SimConfig(couriers=3, count=30, burst=True, id_prefix="east-"), target, client=client(ingest)
        )
    message = str(refused.value)
    assert says in message and f"HTTP {status}" in message and URL in message
    assert "\n" not in message and "s3cret" not in message
    assert ingest.requests <= 3  # each courier's first request, and nothing after


# -- flags -----------------------------------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tracker simulate")
    add_arguments(parser)
    return parser.parse_args(argv)


def target_of(*argv: str) -> IngestTarget | None:
    args = parse(*argv)
    return target_from_args(args, config_from_args(args))


def test_flags_make_a_target(tmp_path):
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"west-0001": "a", "west-0002": "b"}))
    args = parse(
        "--via-ingest", URL, "--protocol", "owntracks", "--tokens", str(tokens), "--couriers", "2",
        "--id-prefix", "west-", "--concurrency", "4",
    )  # fmt: skip
    config = config_from_args(args)
    assert (config.id_prefix, config.via_ingest) == ("west-", True)
    assert target_from_args(args, config) == IngestTarget(
        URL, PhoneProtocol.OWNTRACKS, {"west-0001": "a", "west-0002": "b"}, 4
    )
    assert target_from_args(parse(), config_from_args(parse())) is None
    assert target_from_args(parse("--via-ingest", URL), config) == IngestTarget(URL)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--via-ingest", "127.0.0.1:5055"), "expected the ingest's http:// or https:// URL"),
        (("--via-ingest", "http://h:5055/?token=x"), "expected the ingest's http:// or https:// URL (no query)"),
        (("--protocol", "mqtt"), "unknown protocol 'mqtt'; protocols: osmand, owntracks, native"),
        (("--tokens", "/nonexistent/tokens.json"), "can't read /nonexistent/tokens.json"),
        (("--concurrency", "0"), "argument --concurrency: must be at least 1, got 0"),
    ],
)
def test_bad_ingest_flags_are_one_line_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(*argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("argv", "tokens", "message"),
    [
        (("--protocol", "native"), None, "--protocol needs --via-ingest URL"),
        (("--tokens", "{tokens}"), {}, "--tokens needs --via-ingest URL"),
        (("--via-ingest", URL, "--fault", "missing_partner_id=0.1"), None, "--fault missing_partner_id can't go"),
        (("--via-ingest", URL, "--id-prefix", "a b/"), None, "--id-prefix must be at most 40 of A-Z a-z 0-9"),
        (
            ("--via-ingest", URL, "--couriers", "5", "--tokens", "{tokens}"),
            {"courier-0001": "t", "courier-0003": "t"},
            "--tokens has no token for 3 of the 5 couriers (courier-0002, courier-0004, courier-0005)",
        ),
        (("--tokens", "{tokens}"), [1, 2], "must hold a JSON object of courier id -> token"),
    ],
)
def test_flags_that_dont_fit_together_are_one_line_errors(argv, tokens, message, tmp_path, capsys):
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(tokens))
    argv = tuple(arg.replace("{tokens}", str(path)) for arg in argv)
    with pytest.raises((SystemExit, ValueError)) as raised:
        target_of(*argv)
    error = capsys.readouterr().err.strip() if raised.type is SystemExit else str(raised.value)
    assert message in error.splitlines()[-1]
    assert raised.type is SystemExit or "\n" not in error
