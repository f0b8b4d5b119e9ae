"""Who may reach the gateway: the pure decisions of tracker/access.py (Host, Origin, viewer token, headers)."""

from __future__ import annotations

import pytest

from tracker import access
from tracker.access import (
    REFUSE_HOST,
    REFUSE_ORIGIN,
    REFUSE_TOKEN,
    Policy,
    accepted_subprotocol,
    content_security_policy,
    decide,
    encode_subprotocol_token,
    host_allowed,
    origin_allowed,
    parse_hosts,
    parse_origins,
    response_headers,
    split_host,
    subprotocol_token,
    tile_source,
)
from tracker.settings import Settings

LOOPBACK = parse_hosts(Settings().allowed_hosts)


def policy(**settings) -> Policy:
    return Policy.from_settings(Settings(**settings))


def headers(**values: str) -> dict[str, list[str]]:
    return {name.replace("_", "-"): [value] for name, value in values.items()}


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("localhost", True),
        ("localhost:8000", True),
        ("LOCALHOST:8000", True),
        ("localhost.:8000", True),
        ("127.0.0.1:8000", True),
        ("[::1]:8000", True),
        ("[::1]", True),
        ("evil.example:8000", False),  # a DNS-rebinding page: its own name, our address
        ("localhost.evil.example", False),
        ("127.0.0.2:8000", False),
        ("localhost:99999", False),
        ("localhost:8000/x", False),
        ("local host", False),
        ("", False),
        (None, False),
    ],
)
def test_the_host_must_be_a_loopback_name_by_default_whatever_the_port(host, allowed):
    assert host_allowed(host, LOOPBACK) is allowed


def test_allowed_hosts_are_configurable_and_star_allows_any_well_formed_host():
    names = parse_hosts("tracker.example, 10.0.0.5:8000, [fd00::1]")
    assert names == frozenset({"tracker.example", "10.0.0.5", "fd00::1"})
    assert host_allowed("tracker.example:443", names) and host_allowed("[fd00::1]:80", names)
    assert not host_allowed("localhost", names)
    assert parse_hosts("localhost,*") is None
    assert host_allowed("anything.example:1", None) and host_allowed("tracker_gateway:8000", None)
    assert not host_allowed("bad host", None)


def test_split_host_reads_names_addresses_and_ports():
    assert split_host("Example.COM:8080") == ("example.com", 8080)
    assert split_host("[::1]:8000") == ("::1", 8000)
    assert split_host("::1") is None  # an IPv6 Host needs its brackets


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        (None, "localhost:8000", True),  # not a browser: the bench, the tests, curl
        ("http://localhost:8000", "localhost:8000", True),
        ("http://LOCALHOST:8000", "localhost:8000", True),
        ("https://tracker.example", "tracker.example", True),
        ("https://tracker.example", "tracker.example:443", True),
        ("http://tracker.example", "tracker.example:443", False),
        ("http://localhost:8001", "localhost:8000", False),
        ("http://evil.example", "localhost:8000", False),
        ("null", "localhost:8000", False),  # a sandboxed frame or a file
        ("", "localhost:8000", False),
        ("http://localhost:8000", None, False),
    ],
)
def test_a_websocket_origin_must_be_the_pages_own_host(origin, host, allowed):
    assert origin_allowed(origin, host, frozenset()) is allowed


def test_allowed_origins_add_other_pages_and_bad_entries_are_reported():
    origins, bad = parse_origins("https://ops.example, http://wall.example:8080, ops.example, ftp://x")
    assert bad == ["ops.example", "ftp://x"]
    assert origin_allowed("https://ops.example", "localhost:8000", origins)
    assert origin_allowed("https://ops.example:443", "localhost:8000", origins)
    assert origin_allowed("http://wall.example:8080", "localhost:8000", origins)
    assert not origin_allowed("http://ops.example", "localhost:8000", origins)


def test_the_token_travels_in_a_subprotocol_and_only_tracker_v1_is_accepted():
    offered = ["tracker.v1", encode_subprotocol_token("vïewer-token")]
    assert offered[1].startswith("bearer.") and "=" not in offered[1]
    assert subprotocol_token(offered) == "vïewer-token"
    assert subprotocol_token(["tracker.v1"]) is None
    assert subprotocol_token(["bearer.!!!"]) is None
    assert subprotocol_token(["bearer."]) is None
    assert subprotocol_token(["bearer.__8"]) is None  # base64url, but not UTF-8
    assert accepted_subprotocol({"subprotocols": offered}) == "tracker.v1"
    assert accepted_subprotocol({"subprotocols": [offered[1]]}) is None  # the token is never echoed
    assert accepted_subprotocol({}) is None


def test_without_a_viewer_token_reading_is_open_but_host_and_origin_still_count():
    open_policy = policy()
    assert decide(open_policy, "http", "/api/couriers", headers(host="localhost:8000"), []) is None
    assert decide(open_policy, "http", "/api/couriers", headers(host="evil.example"), []) is REFUSE_HOST
    ws = headers(host="127.0.0.1:8000", origin="http://evil.example")
    assert decide(open_policy, "websocket", "/ws", ws, []) is REFUSE_ORIGIN
    assert decide(open_policy, "websocket", "/ws", headers(host="127.0.0.1:8000"), []) is None


def test_the_probes_answer_whatever_the_host_and_nothing_else_does():
    guarded = policy(viewer_token="viewer-token-1")
    for path in ("/healthz", "/readyz", "/metrics"):
        assert decide(guarded, "http", path, headers(host="10.1.2.3:8000"), []) is None
    for path in ("/", "/dlq", "/api/config", "/assets/x.js"):
        assert decide(guarded, "http", path, headers(host="10.1.2.3:8000"), []) is REFUSE_HOST
    assert decide(guarded, "http", "/healthz", {}, []) is None
    assert decide(guarded, "http", "/", {"host": ["localhost", "evil.example"]}, []) is REFUSE_HOST


@pytest.mark.parametrize(
    ("path", "needs_token"),
    [
        ("/api/couriers", True),
        ("/api/couriers/c1", True),
        ("/api/dlq", True),
        ("/api/dlq/stats", True),
        ("/api/dlq/2:15/replay", True),
        ("/api/anything-new", True),
        ("/api/config", False),
        ("/api/service-area", False),
        ("/", False),
        ("/dlq", False),
        ("/index.html", False),
        ("/assets/index-abc.js", False),
        ("/healthz", False),
        ("/metrics", False),
    ],
)
def test_with_a_viewer_token_the_data_needs_it_and_the_shell_does_not(path, needs_token):
    guarded = policy(viewer_token="viewer-token-1")
    expected = REFUSE_TOKEN if needs_token else None
    assert decide(guarded, "http", path, headers(host="localhost:8000"), []) is expected
    with_token = headers(host="localhost:8000", authorization="Bearer viewer-token-1")
    assert decide(guarded, "http", path, with_token, []) is None


def test_the_viewer_token_or_any_operator_token_reads_and_nothing_else_does():
    guarded = policy(viewer_token="viewer-token-1", admin_token="admin-token-1", operator_tokens="alice:alice-token")
    for token in ("viewer-token-1", "admin-token-1", "alice-token"):
        assert (
            decide(guarded, "http", "/api/dlq", headers(host="localhost", authorization=f"Bearer {token}"), []) is None
        )
        offered = ["tracker.v1", encode_subprotocol_token(token)]
        assert decide(guarded, "websocket", "/ws", headers(host="localhost"), offered) is None
    for authorization in ("Bearer viewer-token-2", "Basic viewer-token-1", "Bearer", "viewer-token-1"):
        assert decide(guarded, "http", "/api/couriers", headers(host="localhost", authorization=authorization), []) is (
            REFUSE_TOKEN
        )
    assert decide(guarded, "websocket", "/ws", headers(host="localhost"), ["tracker.v1"]) is REFUSE_TOKEN
    wrong = ["tracker.v1", encode_subprotocol_token("viewer-token-2")]
    assert decide(guarded, "websocket", "/ws", headers(host="localhost"), wrong) is REFUSE_TOKEN
    header = headers(host="localhost", authorization="Bearer viewer-token-1")
    assert decide(guarded, "websocket", "/ws", header, []) is None  # programs may send the header


def test_refusals_are_fixed_one_line_texts_and_a_refused_socket_closes_with_1008_and_its_reason():
    for refusal in (REFUSE_HOST, REFUSE_ORIGIN, REFUSE_TOKEN):
        text = refusal.body.decode()
        assert text.count("\n") <= 1 and text.strip() and "Traceback" not in text
    assert (REFUSE_HOST.status, REFUSE_ORIGIN.status, REFUSE_TOKEN.status) == (400, 403, 401)
    assert REFUSE_TOKEN.close == (1008, access.WS_TOKEN_REFUSED)


def test_the_policy_allows_the_pages_own_assets_the_tile_origin_and_sockets_to_this_host_only():
    csp = dict(
        directive.split(" ", 1)
        for directive in content_security_policy("localhost:8000", tile_source("https://tile.example/{z}/{x}/{y}.png"))
        .replace("; ", ";")
        .split(";")
    )
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["img-src"] == "'self' data: blob: https://tile.example"
    assert csp["connect-src"] == "'self' ws://localhost:8000 wss://localhost:8000 https://tile.example"
    assert csp["worker-src"] == "'self' blob:"
    assert csp["frame-ancestors"] == "'none'" and csp["object-src"] == "'none'"
    # a Host that is not a host name never reaches the header
    assert "evil" not in content_security_policy("evil; script-src *", None)


@pytest.mark.parametrize(
    ("tile_url", "source"),
    [
        (None, None),
        ("https://tile.example/{z}/{x}/{y}.png", "https://tile.example"),
        ("http://tiles.local:8080/{z}/{x}/{y}.png", "http://tiles.local:8080"),
        ("https://{s}.tile.example/{z}/{x}/{y}.png", "https://*.tile.example"),
        ("tile.example/{z}/{x}/{y}.png", None),
        ("javascript:alert(1)", None),
    ],
)
def test_the_tile_origin_comes_from_tile_url(tile_url, source):
    assert tile_source(tile_url) == source


def test_positions_and_rejected_pings_are_never_cached_and_every_answer_is_hardened():
    for path in (
        "/api/couriers",
        "/api/couriers/c1",
        "/api/dlq",
        "/api/dlq/stats",
        "/api/events",
        "/api/history/fleet",
    ):
        assert ("Cache-Control", "no-store") in response_headers(path, "localhost", None)
    page = dict(response_headers("/", "localhost", None))
    assert "Cache-Control" not in page
    assert page["X-Content-Type-Options"] == "nosniff"
    assert page["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]


def test_a_bug_behind_the_edge_answers_a_fixed_500_with_every_hardening_header():
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route
    from starlette.testclient import TestClient

    async def broken(request):
        raise RuntimeError("secret detail from redis://:hunter2@cache")

    app = Starlette(
        routes=[Route("/api/broken", broken)],
        middleware=[Middleware(access.AccessMiddleware, policy=access.Policy.from_settings(Settings()))],
    )
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
        answer = client.get("/api/broken")
    assert answer.status_code == 500
    assert answer.text == "internal error (see the gateway log)\n"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert "default-src" in answer.headers["content-security-policy"]
