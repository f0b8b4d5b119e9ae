"""The import rules of docs/architecture.md ("Never"), checked on what a fresh interpreter actually loads.

Each service's module is imported alone in a child process (``python -c``), so what another test imported
cannot hide an edge: no service loads ``tracker.local`` (the embedded broker and Redis, for laptops and tests
only), and the review CLI does not load the review's HTTP module.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT

SERVICES = [
    "tracker.gateway",
    "tracker.workers",  # `tracker gateway --workers N`
    "tracker.validator",
    "simulator.cli",  # `tracker simulate`
    "tracker.events.cli",  # `tracker events`
    "tracker.dlq.cli",  # `tracker dlq`
    "tracker.ingest.app",  # `tracker ingest`
]


def loaded_by(module: str) -> set[str]:
    """The names in ``sys.modules`` after a fresh interpreter imports ``module``."""
    code = f"import importlib, json, sys; importlib.import_module({module!r}); print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


@pytest.mark.parametrize("module", SERVICES)
def test_no_service_loads_tracker_local(module):
    local = sorted(name for name in loaded_by(module) if name == "tracker.local" or name.startswith("tracker.local."))
    assert local == [], f"{module} loads {local}"


def test_the_review_cli_does_not_load_the_review_http_module():
    assert "tracker.dlq.http" not in loaded_by("tracker.dlq.cli")
