"""Helpers shared by the launcher's own tests (tests/infra): whether a real Apache Kafka can be started here."""

from __future__ import annotations

import os

import pytest

from tracker.local.apache_kafka import java_missing


def require_java() -> None:
    """Skip the test, with the one-line reason, when no Java runtime here can run Kafka; in CI (CI=true), fail it."""
    reason = java_missing()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"real Apache Kafka is required in CI: {reason}", pytrace=False)
    pytest.skip(reason)
