"""Fixtures for the browser tests: headless Chromium (Debian's, through Playwright's executable_path) and the
real local system it is pointed at."""

from __future__ import annotations

import os

import pytest

from bench.browser import CHROMIUM_ARGS, chromium_path
from tracker.kafka import ensure_topics
from tracker.local.processes import free_port
from tracker.up import LocalSystem


@pytest.fixture
async def browser():
    """A headless Chromium for one test; skipped when none is installed (a failure under CI=true)."""
    from playwright.async_api import async_playwright

    executable = chromium_path()
    if executable is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (.ci/run installs it with apt-get)")
        pytest.skip("chromium not found: apt-get install chromium")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def live_system(settings, tmp_path):
    """Gateway and one validator as child processes on the session's broker and Redis."""
    system_settings = settings.replace(http_port=free_port(), tick_ms=100)
    await ensure_topics(system_settings)
    system = LocalSystem(system_settings, tmp_path, validators=1)
    system.start()
    try:
        yield system
    finally:
        system.stop()
