"""Helpers for the browser tests: where Chromium is, how it is started, and where screenshots go."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.helpers import ROOT

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]
SCREENSHOTS = ROOT / "var" / "screenshots"


def chromium_path() -> str | None:
    """Debian's Chromium (or the one ``CHROMIUM`` names); None when there is none."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot_path(name: str) -> Path:
    """Where a test saves the screenshot ``name`` (var/screenshots/, created on first use)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / name
