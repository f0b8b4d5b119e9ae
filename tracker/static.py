"""The pages' files: gzip made once at build time, and hashed assets cached for good.

A phone opening a tracking link loads MapLibre (~800 KB of script) and the page: 1.7 MB as built, ~0.45 MB
gzipped. Compressing per request would cost the gateway, whose CPU is the fan-out's, tens of milliseconds a
page load; so frontend/build.mjs writes ``<file>.gz`` beside every text file at build time (level 9), and this
serves it to a client that accepts gzip, with the original's media type, ``Content-Encoding: gzip`` and
``Vary: Accept-Encoding``. A client that does not accept gzip gets the original bytes.

Files under ``assets/`` carry a content hash in their names (esbuild's ``[name]-[hash]``), so a browser may
keep them for a year without asking again (``immutable``); the few without one (MapLibre's worker and style
sheet, copied as they are) and the HTML pages are revalidated each time (``no-cache``: a 304 when unchanged).
"""

from __future__ import annotations

import os
import re
import stat
from mimetypes import guess_type

from starlette.datastructures import Headers
from starlette.responses import FileResponse, Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

GZIP_SUFFIX = ".gz"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# esbuild's [name]-[hash]: a dash and 8 characters of base32 before the extension.
_HASHED = re.compile(r"-[A-Z0-9]{8}\.[a-z0-9]+$")


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (listed, or ``*``, with a q-value above 0)."""
    if not accept_encoding:
        return False
    allowed: dict[str, bool] = {}
    for item in accept_encoding.split(","):
        name, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        allowed[name.strip().lower()] = quality > 0
    return allowed.get("gzip", allowed.get("*", False))


def cache_control(full_path: str) -> str:
    """Immutable for a hashed file under assets/, revalidated for everything else."""
    parent = os.path.basename(os.path.dirname(full_path))
    return IMMUTABLE if parent == "assets" and _HASHED.search(full_path) else REVALIDATE


def _stat(path: str) -> os.stat_result | None:
    try:
        result = os.stat(path)
    except OSError:
        return None
    return result if stat.S_ISREG(result.st_mode) else None


class PageFiles(StaticFiles):
    """:class:`StaticFiles` that serves a file's build-time ``.gz`` to clients that accept gzip."""

    def file_response(
        self,
        full_path: os.PathLike[str] | str,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        request_headers = Headers(scope=scope)
        path = os.fspath(full_path)
        headers = {"Cache-Control": cache_control(path), "Vary": "Accept-Encoding"}
        compressed = path + GZIP_SUFFIX
        response: Response
        compressed_stat = _stat(compressed) if accepts_gzip(request_headers.get("accept-encoding")) else None
        if compressed_stat is not None:
            media_type = guess_type(path)[0] or "application/octet-stream"
            headers["Content-Encoding"] = "gzip"
            response = FileResponse(
                compressed, status_code=status_code, media_type=media_type, headers=headers, stat_result=compressed_stat
            )
        else:
            response = FileResponse(path, status_code=status_code, stat_result=stat_result, headers=headers)
        if self.is_not_modified(response.headers, request_headers):
            return NotModifiedResponse(response.headers)
        return response
