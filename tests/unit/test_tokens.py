"""Who may read and who did what: the token and address rules of tracker/tokens.py."""

from __future__ import annotations

import pytest

from tracker.settings import Settings, SettingsError
from tracker.tokens import Access, bearer, client_address, is_loopback, parse_networks, parse_operator_tokens

TRUSTED = parse_networks("10.0.0.0/8,127.0.0.1")


def test_operator_tokens_map_each_token_to_its_label():
    assert parse_operator_tokens("alice:aaaaaaaaaa, bob:bbbbbbbbbb") == {"aaaaaaaaaa": "alice", "bbbbbbbbbb": "bob"}


@pytest.mark.parametrize(
    "raw",
    [
        "aaaaaaaaaa",
        "al ice:aaaaaaaaaa",
        "alice:short",
        "alice:aaaaaaaaaa,alice:bbbbbbbbbb",
        "a:aaaaaaaaaa,b:aaaaaaaaaa",
        "admin:aaaaaaaaaa",
    ],
)
def test_bad_operator_tokens_are_a_settings_error_that_never_shows_the_token(raw):
    with pytest.raises(SettingsError) as caught:
        Settings(operator_tokens=raw).checked()
    assert "aaaaaaaaaa" not in str(caught.value) and "bbbbbbbbbb" not in str(caught.value)


def test_the_admin_token_is_the_operator_admin_and_labels_come_from_the_pairs():
    access = Access.from_settings(Settings(admin_token="root-token-1", operator_tokens="alice:alice-token"))
    assert access.operator("root-token-1") == "admin"
    assert access.operator("alice-token") == "alice"
    assert access.operator("alice-token ") is None
    assert access.operator(None) is None
    assert access.operator("\ud800") is None  # a lone surrogate from a hostile header is just a wrong token


def test_reading_is_open_without_a_viewer_token_and_needs_it_or_an_operator_token_with_one():
    assert Access.from_settings(Settings()).may_read(None)
    access = Access.from_settings(Settings(viewer_token="viewer-token", admin_token="root-token-1"))
    assert not access.may_read(None)
    assert not access.may_read("wrong")
    assert access.may_read("viewer-token")
    assert access.may_read("root-token-1")
    assert access.operator("viewer-token") is None  # a viewer cannot write


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer", None), (None, None)],
)
def test_bearer(header, token):
    assert bearer(header) == token


def test_forwarded_for_is_ignored_from_an_untrusted_peer():
    assert client_address("192.0.2.7", ["198.51.100.1"], TRUSTED) == "192.0.2.7"
    assert client_address("127.0.0.1", ["198.51.100.1"], ()) == "127.0.0.1"


def test_forwarded_for_from_a_trusted_proxy_names_the_nearest_untrusted_hop():
    # the client wrote "6.6.6.6" itself; the proxy appended the address it saw
    assert client_address("127.0.0.1", ["6.6.6.6, 198.51.100.1"], TRUSTED) == "198.51.100.1"
    assert client_address("127.0.0.1", ["6.6.6.6", "198.51.100.1, 10.1.2.3"], TRUSTED) == "198.51.100.1"
    assert client_address("127.0.0.1", ["not-an-ip"], TRUSTED) == "127.0.0.1"
    assert client_address("127.0.0.1", [], TRUSTED) == "127.0.0.1"


def test_trusted_proxies_must_be_addresses_or_networks():
    with pytest.raises(SettingsError, match="not an address"):
        Settings(trusted_proxies="10.0.0.0/8,proxy.local").checked()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("tracker.example", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback
