"""The pages' files go out gzipped (made at build time) to clients that take gzip, and hashed assets are kept."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from tests.helpers import ROOT
from tracker.static import IMMUTABLE, REVALIDATE, PageFiles, accepts_gzip

SCRIPT = b"export const courier = 'moving';\n" * 200


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "track-ABCD2345.js").write_bytes(SCRIPT)
    (tmp_path / "assets" / "track-ABCD2345.js.gz").write_bytes(gzip.compress(SCRIPT))
    (tmp_path / "assets" / "maplibre-gl-worker.js").write_bytes(SCRIPT)
    (tmp_path / "index.html").write_text("<!doctype html><title>map</title>")
    app = Starlette(routes=[Mount("/", PageFiles(directory=tmp_path, html=True))])
    return TestClient(app)


def test_a_client_that_takes_gzip_gets_the_build_time_gzip_with_the_scripts_type(client):
    response = client.get("/assets/track-ABCD2345.js", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript")
    assert int(response.headers["content-length"]) < len(SCRIPT) / 10  # the compressed bytes went out
    assert response.content == SCRIPT  # and they decode to the file
    assert response.headers["vary"] == "Accept-Encoding"


def test_a_client_that_does_not_take_gzip_gets_the_file_as_it_is(client):
    for accept in ("identity", "gzip;q=0", "br"):
        response = client.get("/assets/track-ABCD2345.js", headers={"Accept-Encoding": accept})
        assert "content-encoding" not in response.headers, accept
        assert int(response.headers["content-length"]) == len(SCRIPT)


def test_hashed_assets_are_kept_for_good_and_the_rest_revalidated(client):
    assert client.get("/assets/track-ABCD2345.js").headers["cache-control"] == IMMUTABLE
    assert client.get("/assets/maplibre-gl-worker.js").headers["cache-control"] == REVALIDATE
    assert client.get("/").headers["cache-control"] == REVALIDATE


def test_an_unchanged_file_is_answered_304_in_either_encoding(client):
    for accept in ("gzip", "identity"):
        first = client.get("/assets/track-ABCD2345.js", headers={"Accept-Encoding": accept})
        again = client.get(
            "/assets/track-ABCD2345.js", headers={"Accept-Encoding": accept, "If-None-Match": first.headers["etag"]}
        )
        assert again.status_code == 304, accept


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("GZIP", True),
        ("deflate, gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip;q=0.0, br", False),
        ("*", True),
        ("*;q=0", False),
        ("br, *", True),
        ("gzip;q=abc", False),
        ("identity", False),
    ],
)
def test_accept_encoding(header, expected):
    assert accepts_gzip(header) is expected


def test_the_build_gzips_every_script_style_sheet_and_page_it_writes():
    dist = ROOT / "frontend" / "dist"
    texts = [p for p in dist.rglob("*") if p.suffix in {".html", ".js", ".css"} and p.is_file()]
    assert texts, "the pages are built by make test before the tests run"
    for text in texts:
        compressed = text.with_name(text.name + ".gz")
        assert compressed.is_file(), f"{text.relative_to(dist)} has no .gz"
        assert gzip.decompress(compressed.read_bytes()) == text.read_bytes(), text
