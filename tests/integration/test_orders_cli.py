"""``tracker orders`` against the real Redis and broker: create prints a link that verifies as that order's,
ls shows it, deliver produces ``order_delivered`` once however often it is run, revoke shows in ls, and
mistakes get one line and exit code 2."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.integration.kafka_helpers import read_topic
from tracker import cli
from tracker.orders.link import Link, verify
from tracker.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.broker_agnostic]

SECRET = "orders-cli-test-secret-0123456789abcdef"


def test_tracker_orders_creates_lists_delivers_once_and_revokes(settings: Settings, capsys, monkeypatch) -> None:
    monkeypatch.setenv("TRACKER_TRACKING_SECRET", SECRET)
    where = ["--redis-url", settings.redis_url or "", "--bootstrap-servers", settings.kafka_bootstrap_servers or ""]
    where += ["--namespace", settings.namespace]
    assert cli.main(["orders", "ls", *where]) == 0
    assert "No orders" in capsys.readouterr().out

    create = ["orders", "create", "o-cli-1", "--courier", "courier-9", "--dropoff", "12.97,77.59"]
    assert cli.main([*create, "--base-url", "https://maps.example/", *where]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("Order o-cli-1 of courier courier-9, link valid until ")
    url = printed[1].strip()
    assert url.startswith("https://maps.example/")
    link = verify(url.rsplit("/", 1)[-1], SECRET, time.time())
    assert isinstance(link, Link) and (link.order_id, link.partner_id) == ("o-cli-1", "courier-9")
    assert cli.main([*create, *where]) == 2
    assert capsys.readouterr().err.strip().endswith("order 'o-cli-1' exists")

    assert cli.main(["orders", "ls", "--json", *where]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["order_id"], row["partner_id"], row["state"], row["revoked"]) == (
        "o-cli-1",
        "courier-9",
        "picked_up",  # no --pickup: the order starts picked up
        False,
    )

    assert cli.main(["orders", "deliver", "o-cli-1", *where]) == 0
    assert capsys.readouterr().out.strip() == "Order o-cli-1 delivered (was picked_up)"
    assert cli.main(["orders", "deliver", "o-cli-1", *where]) == 0
    assert capsys.readouterr().out.strip() == "Order o-cli-1 delivered (was delivered); it already was"
    events = asyncio.run(read_topic(settings, settings.events_topic, idle_s=1))
    delivered = [json.loads(r.value or b"") for r in events]
    assert [(e["type"], e["order_id"]) for e in delivered] == [("order_delivered", "o-cli-1")]

    assert cli.main(["orders", "revoke", "o-cli-1", *where]) == 0
    assert "revoked" in capsys.readouterr().out
    assert cli.main(["orders", "ls", "--json", *where]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["revoked"] is True
    assert cli.main(["orders", "revoke", "o-nobody", *where]) == 2
    assert capsys.readouterr().err.strip().endswith("no order 'o-nobody'")
