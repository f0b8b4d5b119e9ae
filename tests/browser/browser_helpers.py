"""Helpers for the browser tests: where screenshots go (where Chromium is and how it starts: bench/browser.py)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import ROOT

SCREENSHOTS = ROOT / "var" / "screenshots"


def screenshot_path(name: str) -> Path:
    """Where a test saves the screenshot ``name`` (var/screenshots/, created on first use)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / name
