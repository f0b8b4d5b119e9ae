"""The local basemap (tracker/basemap.py): the Range rule, the archive check, and the route as a browser's
pmtiles client meets it (206 with Content-Range, 416 with the size, 400 with one fixed line, never a 500)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tracker import basemap
from tracker.basemap import MALFORMED, NOT_SATISFIABLE, ByteRange, archive_problems, parse_range
from tracker.gateway import create_app
from tracker.settings import Settings, SettingsError

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),  # no Range: the whole file
        ("bytes=0-99", ByteRange(0, 99)),
        ("bytes=0-0", ByteRange(0, 0)),
        ("bytes=990-", ByteRange(990, 999)),
        ("bytes=0-16383", ByteRange(0, 999)),  # the pmtiles client's first read of a small archive: cut
        ("bytes=999-5000", ByteRange(999, 999)),
        ("bytes=-10", ByteRange(990, 999)),  # the last 10 bytes
        ("bytes=-5000", ByteRange(0, 999)),
        ("Bytes = 5 - 9", ByteRange(5, 9)),  # the unit is case-insensitive; spaces are tolerated
        ("bytes=1000-1010", NOT_SATISFIABLE),  # starts at the end
        ("bytes=5000-", NOT_SATISFIABLE),
        ("bytes=-0", NOT_SATISFIABLE),
        ("bytes=9-5", MALFORMED),  # last before first
        ("bytes=0-1,5-9", MALFORMED),  # several ranges: the page never asks for them
        ("bytes=-", MALFORMED),
        ("bytes=", MALFORMED),
        ("", MALFORMED),
        ("items=0-9", MALFORMED),
        ("bytes=+1-9", MALFORMED),  # int() would take these; a Range may not
        ("bytes=1_0-20", MALFORMED),
        ("bytes=١-٩", MALFORMED),  # digits, but not ASCII ones
        ("bytes=0x10-20", MALFORMED),
        ("bytes=" + "9" * 20 + "-", MALFORMED),
    ],
)
def test_parse_range(header, expected):
    assert parse_range(header, SIZE) == expected


def test_an_empty_file_satisfies_no_range():
    assert parse_range("bytes=0-", 0) == NOT_SATISFIABLE
    assert parse_range("bytes=-1", 0) == NOT_SATISFIABLE
    assert parse_range(None, 0) is None


def test_refusals_are_fixed_one_line_texts():
    assert (MALFORMED.status, NOT_SATISFIABLE.status) == (400, 416)
    for refusal in (MALFORMED, NOT_SATISFIABLE):
        assert "\n" not in refusal.message and len(refusal.message) < 120


def archive(tmp_path: Path, size: int = 5000) -> Path:
    """A file that starts like a PMTiles v3 archive; the route serves bytes and never reads them."""
    path = tmp_path / "area.pmtiles"
    path.write_bytes(b"PMTiles\x03" + bytes(index % 251 for index in range(size - 8)))
    return path


def test_archive_check(tmp_path):
    assert archive_problems(str(archive(tmp_path))) == []
    (tmp_path / "v2.pmtiles").write_bytes(b"PMTiles\x02" + bytes(200))
    assert archive_problems(str(tmp_path / "v2.pmtiles")) == [
        f"basemap {str(tmp_path / 'v2.pmtiles')!r} is not a PMTiles v3 archive"
    ]
    (tmp_path / "tiles.mbtiles").write_bytes(b"SQLite format 3\x00")
    assert "is not a PMTiles archive" in archive_problems(str(tmp_path / "tiles.mbtiles"))[0]
    assert "cannot be read" in archive_problems(str(tmp_path / "missing.pmtiles"))[0]


def test_a_bad_basemap_setting_is_one_line_at_start(tmp_path):
    (tmp_path / "style.json").write_text("{}")
    with pytest.raises(SettingsError, match=r"^basemap '.*style\.json' is not a PMTiles archive"):
        Settings.from_env({"TRACKER_BASEMAP": str(tmp_path / "style.json")})
    assert Settings.from_env({"TRACKER_BASEMAP": str(archive(tmp_path))}).basemap == str(tmp_path / "area.pmtiles")


@pytest.fixture
def client(tmp_path) -> TestClient:
    """The gateway's app without its lifespan (no broker or Redis): the basemap and config routes need neither."""
    app = create_app(Settings(basemap=str(archive(tmp_path))), consume=False)
    return TestClient(app, base_url="http://localhost")


def test_ranges_as_the_pmtiles_client_reads_them(client, tmp_path):
    body = (tmp_path / "area.pmtiles").read_bytes()
    first = client.get("/basemap.pmtiles", headers={"Range": "bytes=0-16383"})  # its first read: header + root
    assert first.status_code == 206
    assert first.headers["content-range"] == f"bytes 0-{len(body) - 1}/{len(body)}"
    assert first.headers["accept-ranges"] == "bytes"
    assert first.content == body
    tile = client.get("/basemap.pmtiles", headers={"Range": "bytes=127-4226"})  # then a directory or a tile
    assert (tile.status_code, tile.headers["content-range"]) == (206, f"bytes 127-4226/{len(body)}")
    assert tile.content == body[127:4227] and tile.headers["content-length"] == "4100"
    assert tile.headers["etag"] == first.headers["etag"]  # the client checks that the archive did not change
    assert "default-src 'self'" in tile.headers["content-security-policy"]  # the page's headers, as on any answer

    whole = client.get("/basemap.pmtiles")
    assert whole.status_code == 200 and whole.content == body and whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["etag"] == first.headers["etag"]
    head = client.head("/basemap.pmtiles", headers={"Range": "bytes=0-9"})
    assert (head.status_code, head.headers["content-length"], head.content) == (206, "10", b"")


def test_bad_ranges_get_fixed_answers(client, tmp_path):
    size = (tmp_path / "area.pmtiles").stat().st_size
    past = client.get("/basemap.pmtiles", headers={"Range": f"bytes={size}-"})
    assert past.status_code == 416
    assert past.headers["content-range"] == f"bytes */{size}"  # how the client learns the size
    assert past.json() == {"error": basemap.RANGE_NOT_SATISFIABLE}
    for header in ("bytes=9-5", "bytes=0-1,4-5", "lines=1-2", "bytes=abc"):
        refused = client.get("/basemap.pmtiles", headers={"Range": header})
        assert (refused.status_code, refused.json()) == (400, {"error": basemap.RANGE_MALFORMED}), header
    # An If-Range that names another version of the archive: the whole (current) file, as HTTP says.
    stale = client.get("/basemap.pmtiles", headers={"Range": "bytes=0-9", "If-Range": '"elsewhere"'})
    assert stale.status_code == 200 and len(stale.content) == size
    for validator in ("etag", "last-modified"):  # the current version, by either validator: the range
        current = stale.headers[validator]
        same = client.get("/basemap.pmtiles", headers={"Range": "bytes=0-9", "If-Range": current})
        assert (same.status_code, len(same.content)) == (206, 10), validator


def test_a_replaced_archive_has_another_etag(client, tmp_path):
    before = client.get("/basemap.pmtiles", headers={"Range": "bytes=0-9"}).headers["etag"]
    path = tmp_path / "area.pmtiles"
    path.write_bytes(path.read_bytes() + b"more")
    os.utime(path, ns=(1, 1))
    assert client.get("/basemap.pmtiles", headers={"Range": "bytes=0-9"}).headers["etag"] != before


def test_config_names_the_basemap_only_when_there_is_one(client):
    assert client.get("/api/config").json()["basemap_url"] == "basemap.pmtiles"
    without = TestClient(create_app(Settings(), consume=False), base_url="http://localhost")
    assert without.get("/api/config").json()["basemap_url"] is None
    assert without.get("/basemap.pmtiles").status_code == 404
