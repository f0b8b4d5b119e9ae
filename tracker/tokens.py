"""Who is asking: the viewer token, the operators' labelled tokens, and the address a request comes from.

Pure: no I/O, no framework. The gateway's HTTP and WebSocket edges (tracker/access.py, tracker/dlq/http.py)
ask :class:`Access` two questions, "may this token read the map's data?" and "which operator is this?",
and :func:`client_address` where a request really comes from.

- Operators: ``TRACKER_ADMIN_TOKEN`` is the operator labelled ``admin``; ``TRACKER_OPERATOR_TOKENS`` adds
  ``label:token`` pairs, one per operator. The label (never the token) is what an audit record names.
- Viewers: with ``TRACKER_VIEWER_TOKEN`` set, reading needs it or any operator token (an operator can read
  what they review). Unset, reading is open (the loopback default; ``tracker gateway`` warns when it binds
  to anything else without one).
- Tokens are compared in constant time, each against every configured token, so the time taken does not
  say which one nearly matched.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Iterable, Mapping

import msgspec

ADMIN_LABEL = "admin"
LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
MIN_TOKEN_LENGTH = 8  # shorter is a password someone typed, not a token

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_operator_tokens(raw: str) -> dict[str, str]:
    """``"alice:TOKEN,bob:TOKEN"`` -> {token: label}. ValueError (naming the label, never the token) for a
    pair without a label, a label of other characters, a repeated label or token, or a short token."""
    operators: dict[str, str] = {}
    labels: set[str] = set()
    for number, part in enumerate((p.strip() for p in raw.split(",")), start=1):
        if not part:
            continue
        label, sep, token = part.partition(":")
        label, token = label.strip(), token.strip()
        if not sep or not LABEL_RE.fullmatch(label):
            raise ValueError(
                f"entry {number} must be label:token with a label of 1-32 letters, digits, '.', '_' or '-'"
            )
        if label == ADMIN_LABEL:
            raise ValueError(f"the label {ADMIN_LABEL!r} is TRACKER_ADMIN_TOKEN's")
        if len(token) < MIN_TOKEN_LENGTH:
            raise ValueError(f"the token of {label!r} is shorter than {MIN_TOKEN_LENGTH} characters")
        if label in labels or token in operators:
            raise ValueError(f"{label!r} repeats a label or another operator's token")
        labels.add(label)
        operators[token] = label
    return operators


def parse_networks(raw: str | None) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 127.0.0.1"`` -> networks; ValueError naming the entry that is neither."""
    networks = []
    for part in (p.strip() for p in (raw or "").split(",")):
        if part:
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"{part!r} is not an address or a CIDR network") from None
    return tuple(networks)


def _matches(supplied: str, expected: str) -> bool:
    return hmac.compare_digest(supplied.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


class Access(msgspec.Struct, frozen=True):
    """The configured tokens; built once per gateway from its settings."""

    viewer_token: str | None
    operators: Mapping[str, str]  # token -> label

    @classmethod
    def from_settings(cls, settings) -> Access:
        operators = parse_operator_tokens(settings.operator_tokens or "")
        if settings.admin_token:
            operators = {settings.admin_token: ADMIN_LABEL, **operators}
        return cls(settings.viewer_token or None, operators)

    @property
    def reading_is_open(self) -> bool:
        return self.viewer_token is None

    @property
    def writing_is_enabled(self) -> bool:
        return bool(self.operators)

    def operator(self, token: str | None) -> str | None:
        """The label of the operator whose token this is, or None."""
        if not token:
            return None
        found = None
        for expected, label in self.operators.items():  # every one, whatever matched: constant time
            if _matches(token, expected):
                found = label
        return found

    def may_read(self, token: str | None) -> bool:
        """Whether a request bearing ``token`` may read positions and rejected pings."""
        if self.viewer_token is None:
            return True
        viewer = token is not None and _matches(token, self.viewer_token)
        return self.operator(token) is not None or viewer


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, or None."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def client_address(peer: str | None, forwarded_for: Iterable[str], trusted: tuple[Network, ...]) -> str:
    """Where a request comes from: its peer, or, when the peer is a trusted proxy, the nearest address in
    ``X-Forwarded-For`` (each of its header lines, in order) that is not itself a trusted proxy. Anything
    the client wrote beyond that hop is not believed; an unparseable hop ends the walk there."""
    address = peer or "unknown"
    if not trusted or not _trusted(address, trusted):
        return address
    hops = [hop.strip() for line in forwarded_for for hop in line.split(",")]
    for hop in reversed(hops):
        if not hop:
            continue
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return address
        address = hop
        if not _trusted(hop, trusted):
            return hop
    return address


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps a service on this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
