"""The embedded Kafka's jars: the lock is well formed, and downloads are checked against it.

The downloads are served by a loopback HTTP server standing in for Maven Central (``KAFKA_MAVEN_REPO``).
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from tracker.local import apache_kafka
from tracker.local.apache_kafka import JARS_LOCK, KafkaStartError, read_lock, resolve_classpath
from tracker.settings import Settings


def test_the_shipped_lock_pins_a_complete_broker_runtime():
    jars = read_lock(JARS_LOCK.read_text())
    paths = [path for path, _, _ in jars]
    assert len(paths) == len(set(paths))
    names = {Path(path).name.rsplit("-", 1)[0] for path in paths}
    # The broker, its storage and raft layers, the clients, Scala, and a logging backend.
    assert {
        "kafka_2.13",
        "kafka-server",
        "kafka-storage",
        "kafka-raft",
        "kafka-clients",
        "scala-library",
        "log4j-core",
    } <= names
    assert all(path.endswith(".jar") and size > 0 for path, _, size in jars)


@pytest.mark.parametrize("line", ["a.jar deadbeef 3", "a.jar", "a.jar " + "0" * 64 + " many"])
def test_a_malformed_lock_line_is_named(line):
    with pytest.raises(ValueError, match=r"jars\.lock line 2"):
        read_lock("# header\n" + line)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A fake Maven repository on loopback with two jars, a lock for them, an empty cache, and the settings
    (``KAFKA_MAVEN_REPO``, ``TRACKER_KAFKA_CACHE``) that point at both."""
    root = tmp_path / "repo"
    files = {"org/x/a/1/a-1.jar": b"first jar", "org/x/b/2/b-2.jar": b"second jar" * 100}
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True)
        (root / path).write_bytes(data)
    lock = tmp_path / "jars.lock"
    lock.write_text(
        "# test\n" + "".join(f"{path} {hashlib.sha256(data).hexdigest()} {len(data)}\n" for path, data in files.items())
    )
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(apache_kafka, "JARS_LOCK", lock)
    settings = Settings.from_env(
        {
            "KAFKA_MAVEN_REPO": f"http://127.0.0.1:{server.server_address[1]}/",
            "TRACKER_KAFKA_CACHE": str(tmp_path / "cache"),
        }
    )
    yield settings, root, files, requests, tmp_path / "cache" / "maven"
    server.shutdown()
    server.server_close()


def test_missing_jars_are_downloaded_once_with_progress_and_then_reused(repo):
    settings, _, files, requests, cache = repo
    lines: list[str] = []
    classpath = resolve_classpath(settings, lines.append)
    assert classpath.split(":") == [str(cache / path) for path in files]
    assert [Path(entry).read_bytes() for entry in classpath.split(":")] == list(files.values())
    assert len(lines) == 2 and lines[-1].startswith("fetching Apache Kafka jars from http://127.0.0.1:")
    assert "2/2" in lines[-1]

    requests.clear()
    assert resolve_classpath(settings, lines.append) == classpath
    assert requests == [] and len(lines) == 2  # all cached: no request, no progress


def test_a_jar_that_does_not_match_the_lock_is_refused_and_not_cached(repo):
    settings, root, files, _, cache = repo
    tampered = next(iter(files))
    (root / tampered).write_bytes(b"evil jar!")  # same size as "first jar", other bytes
    with pytest.raises(KafkaStartError, match=r"does not match jars\.lock"):
        resolve_classpath(settings)
    assert not (cache / tampered).exists()
    assert not [p for p in cache.rglob("*") if p.is_file() and p.name != ".lock"]


def test_an_unreachable_repository_is_one_clear_line(repo):
    settings = repo[0].replace(kafka_maven_repo="http://127.0.0.1:9/maven2")  # discard port: connection refused
    with pytest.raises(KafkaStartError, match=r"could not download http://127\.0\.0\.1:9/maven2/org/x/a") as error:
        resolve_classpath(settings)
    assert "\n" not in str(error.value)
