"""The local basemap: a PMTiles archive (``TRACKER_BASEMAP``) served to the map page with HTTP range requests.

PMTiles v3 is one file of vector tiles: a 127-byte header, a root directory, metadata, leaf directories and
the tiles. The page's ``pmtiles`` client never downloads it whole: it reads the header and root directory
with one ``Range: bytes=0-16383`` request, then each directory and tile it needs with one range each, and
draws them with the Protomaps basemap layers (frontend/src/basemap.js). So the gateway needs nothing but
byte serving of one file: :func:`parse_range` is the rule (pure), :func:`serve` the route.

What the route answers:

- no ``Range``: 200 with the whole file (``Accept-Ranges: bytes``);
- one satisfiable range (``bytes=A-B``, ``bytes=A-``, ``bytes=-N``; an end past the file is cut to it):
  206 with ``Content-Range: bytes A-B/SIZE`` and those bytes;
- a range starting at or past the end of the file (or ``bytes=-0``): 416 with ``Content-Range: bytes
  */SIZE`` (the pmtiles client reads the archive's size from it when the archive is shorter than 16 KiB);
- anything else in ``Range`` (another unit, several ranges, a first byte after the last): 400 with a fixed
  one-line ``error``;
- ``If-Range`` that is neither the current ETag nor the ``Last-Modified`` date: 200 with the whole file, as
  HTTP says.

Every answer carries the archive's ETag (its size and modification time), so a client that read part of an
archive that is then replaced notices (the pmtiles client compares ETags and starts again).

The archive is OpenStreetMap data, not courier data: like the page's own assets it is served without the
viewer token (tracker/access.py guards ``/ws`` and ``/api/``).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import AsyncIterator
from email.utils import formatdate
from typing import NamedTuple

import anyio
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse

BASEMAP_PATH = "/basemap.pmtiles"  # where the gateway serves the archive; /api/config tells the page
MAGIC = b"PMTiles"
SPEC_VERSION = 3
CHUNK_BYTES = 64 * 1024
MEDIA_TYPE = "application/vnd.pmtiles"

RANGE_MALFORMED = "Range must be one byte range: bytes=FIRST-LAST, bytes=FIRST- or bytes=-SUFFIX"
RANGE_NOT_SATISFIABLE = "Range starts at or past the end of the basemap archive"
BASEMAP_UNAVAILABLE = "the basemap archive cannot be read"

# One range, in digits only (int() would also take "+5", "1_000" and other digits than ASCII ones).
_RANGE = re.compile(r"bytes[ \t]*=[ \t]*([0-9]{0,19})[ \t]*-[ \t]*([0-9]{0,19})[ \t]*", re.ASCII | re.IGNORECASE)


class ByteRange(NamedTuple):
    """Bytes ``first`` to ``last`` of a file, both included (as in ``Content-Range``)."""

    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1


class RangeRefused(NamedTuple):
    """A ``Range`` the route answers with ``status`` (400 or 416) and the fixed one-line ``message``."""

    status: int
    message: str


MALFORMED = RangeRefused(400, RANGE_MALFORMED)
NOT_SATISFIABLE = RangeRefused(416, RANGE_NOT_SATISFIABLE)


def parse_range(header: str | None, size: int) -> ByteRange | RangeRefused | None:
    """The bytes a ``Range`` header asks of a file of ``size`` bytes: None for the whole file (no header)."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header)
    if match is None:
        return MALFORMED
    first_text, last_text = match.groups()
    if not first_text:
        if not last_text:
            return MALFORMED  # "bytes=-"
        suffix = int(last_text)  # the last N bytes
        if suffix == 0 or size == 0:
            return NOT_SATISFIABLE
        return ByteRange(max(size - suffix, 0), size - 1)
    first = int(first_text)
    if last_text and int(last_text) < first:
        return MALFORMED
    if first >= size:
        return NOT_SATISFIABLE
    return ByteRange(first, min(int(last_text), size - 1) if last_text else size - 1)


def etag(stat: os.stat_result) -> str:
    """A strong ETag of the archive as it is on disk: changes when the file is replaced or rewritten."""
    digest = hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}".encode()).hexdigest()[:32]
    return f'"{digest}"'


def archive_problems(path: str) -> list[str]:
    """What is wrong with ``path`` as a PMTiles v3 archive (the setting's check: a bad one stops the gateway at
    start, with one line, instead of a map that silently draws no streets)."""
    try:
        with open(path, "rb") as file:
            head = file.read(len(MAGIC) + 1)
    except OSError as exc:
        return [f"basemap {path!r} cannot be read: {exc.strerror or exc}"]
    if head[: len(MAGIC)] != MAGIC:
        return [f"basemap {path!r} is not a PMTiles archive (no PMTiles header)"]
    if head[len(MAGIC) :] != bytes([SPEC_VERSION]):
        return [f"basemap {path!r} is not a PMTiles v{SPEC_VERSION} archive"]
    return []


async def _chunks(path: str, byte_range: ByteRange) -> AsyncIterator[bytes]:
    left = byte_range.length
    async with await anyio.open_file(path, "rb") as file:
        await file.seek(byte_range.first)
        while left > 0:
            chunk = await file.read(min(CHUNK_BYTES, left))
            if not chunk:
                return  # the file shrank under us: the client sees a short body and its length check fails
            left -= len(chunk)
            yield chunk


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def serve(request: Request) -> Response:
    """``GET``/``HEAD`` of the archive named by ``TRACKER_BASEMAP`` (see the module doc)."""
    path = request.app.state.gateway.settings.basemap
    if not path:
        return _error(404, "no basemap is configured (TRACKER_BASEMAP)")
    try:
        stat = await anyio.to_thread.run_sync(os.stat, path)
    except OSError:
        return _error(503, BASEMAP_UNAVAILABLE)
    tag, modified = etag(stat), formatdate(stat.st_mtime, usegmt=True)
    headers = {"ETag": tag, "Last-Modified": modified, "Accept-Ranges": "bytes"}
    if_range = request.headers.get("if-range")
    # Otherwise the whole file (FileResponse compares If-Range with the same two and ignores the Range).
    current = if_range in (None, tag, modified)
    wanted = parse_range(request.headers.get("range"), stat.st_size) if current else None
    if wanted is None:
        return FileResponse(path, headers=headers, media_type=MEDIA_TYPE, stat_result=stat)
    if isinstance(wanted, RangeRefused):
        if wanted.status == 416:
            headers["Content-Range"] = f"bytes */{stat.st_size}"
        return _error(wanted.status, wanted.message, headers)
    headers["Content-Range"] = f"bytes {wanted.first}-{wanted.last}/{stat.st_size}"
    headers["Content-Length"] = str(wanted.length)
    if request.method == "HEAD":
        return Response(status_code=206, headers=headers, media_type=MEDIA_TYPE)
    return StreamingResponse(_chunks(path, wanted), status_code=206, headers=headers, media_type=MEDIA_TYPE)
