"""The gateway's /metrics text: the hot-path histogram in Prometheus's histogram form, checked by promtool."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tracker.metrics import GatewayMetrics


def test_the_delivery_delay_histogram_counts_each_observation_in_its_bucket_and_above():
    metrics = GatewayMetrics()
    for seconds in (0.001, 0.005, 0.03, 0.03, 7.0):
        metrics.delivery_delay.observe(seconds)
    text = metrics.render({}, {}).decode()
    lines = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("tracker_position_delivery")
    }
    name = "tracker_position_delivery_delay_seconds"
    assert lines[f'{name}_bucket{{le="0.005"}}'] == 2  # "le": 0.005 itself counts
    assert lines[f'{name}_bucket{{le="0.02"}}'] == 2
    assert lines[f'{name}_bucket{{le="0.04"}}'] == 4
    assert lines[f'{name}_bucket{{le="5.12"}}'] == 4
    assert lines[f'{name}_bucket{{le="+Inf"}}'] == 5
    assert lines[f"{name}_count"] == 5
    assert lines[f"{name}_sum"] == pytest.approx(7.066)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_the_gateway_metrics_pass_promtool():
    metrics = GatewayMetrics()
    metrics.delivery_delay.observe(0.2)
    metrics.frames_sent.inc()
    rendered = metrics.render({"accepted": 3}, {"online": 1})
    checked = subprocess.run(["promtool", "check", "metrics"], input=rendered, capture_output=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_frames_sent_counts_each_frame_as_a_prometheus_counter():
    metrics = GatewayMetrics()
    for _ in range(3):
        metrics.frames_sent.inc()
    text = metrics.render({}, {}).decode()
    assert "# TYPE tracker_ws_frames_sent_total counter" in text
    assert "tracker_ws_frames_sent_total 3.0" in text.splitlines()
