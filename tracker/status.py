"""Courier status from the age of the last fix and the reported speed. Pure."""

from __future__ import annotations

import enum

import msgspec


class Status(enum.Enum):
    ONLINE = "online"  # recent fix, moving
    IDLE = "idle"  # recent fix, standing still
    STALE = "stale"  # no fix for a while: the marker may be out of date
    OFFLINE = "offline"  # silent for long: phone off, shift over


class StatusThresholds(msgspec.Struct, frozen=True):
    stale_after_ms: int = 60_000
    offline_after_ms: int = 600_000
    idle_below_mps: float = 0.5


def courier_status(fix_ts_ms: int, speed: float | None, now_ms: int, thresholds: StatusThresholds) -> Status:
    age_ms = now_ms - fix_ts_ms
    if age_ms > thresholds.offline_after_ms:
        return Status.OFFLINE
    if age_ms > thresholds.stale_after_ms:
        return Status.STALE
    if speed is not None and speed < thresholds.idle_below_mps:
        return Status.IDLE
    return Status.ONLINE
