"""Headless Chromium (Debian's, through Playwright's executable_path) against the real local system."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tracker.kafka import ensure_topics
from tracker.local.processes import free_port
from tracker.up import LocalSystem

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
SCREENSHOTS = ROOT / "var" / "screenshots"


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
async def browser():
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


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / name
