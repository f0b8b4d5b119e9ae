"""Retry with exponential backoff for transient broker and Redis errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class RetriesExhausted(Exception):
    def __init__(self, what: str, attempts: int, last_error: BaseException) -> None:
        super().__init__(f"{what} failed after {attempts} attempts: {last_error!r}")
        self.attempts = attempts
        self.last_error = last_error


async def retry(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    attempts: int,
    backoff_ms: int,
    retry_on: tuple[type[BaseException], ...],
    max_backoff_ms: int = 2_000,
) -> T:
    """Run ``operation`` up to ``attempts`` times, sleeping ``backoff_ms`` × 2^n between tries."""
    for attempt in range(1, attempts + 1):
        try:
            return await operation()
        except retry_on as exc:
            left = attempts - attempt
            if left == 0:
                raise RetriesExhausted(what, attempts, exc) from exc
            delay_ms = min(backoff_ms * 2 ** (attempt - 1), max_backoff_ms)
            log.warning(
                "%s failed (attempt %d of %d, %d left): %r; retrying in %d ms",
                what,
                attempt,
                attempts,
                left,
                exc,
                delay_ms,
            )
            await asyncio.sleep(delay_ms / 1000)
    raise AssertionError("unreachable")
