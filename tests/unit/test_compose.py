"""docker-compose.yml and the Dockerfile, checked without Docker: they must agree with the code they run.

A container that starts with a misspelt variable, a command the CLI lost or a flag it renamed fails only at
``docker compose up``, on someone else's machine. So: every variable set on a tracker service is one the
settings module reads, and its value parses; every ``tracker X ...`` command parses with the real argument
parser; dependencies, healthchecks, the published gateway port and the image build steps hang together.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from tracker.cli import COMMANDS, build_parser
from tracker.settings import ENV_NAMES, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
TRACKER_SERVICES = sorted(name for name, service in SERVICES.items() if "build" in service)


def environment(service: dict) -> dict[str, str]:
    """A service's environment as a dict (compose accepts a mapping or a list of KEY=VALUE)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


def interpolated(value: str) -> str:
    """Compose's ``${VAR:-default}`` / ``${VAR-default}`` / ``${VAR}`` with nothing set: the default, or ''."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}", lambda m: m.group(1) or "", value)


def command(service: dict) -> list[str]:
    raw = service.get("command") or []
    return shlex.split(raw) if isinstance(raw, str) else [str(part) for part in raw]


def option_strings(subcommand: str) -> set[str]:
    """The flags ``tracker <subcommand>`` defines, spelt out (argparse would also take abbreviations)."""
    import argparse

    parser = build_parser()
    sub = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return set(sub.choices[subcommand]._option_string_actions)


def depends_on(service: dict) -> dict[str, str]:
    """Dependency -> condition (the short list form means service_started)."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


def published_ports(service: dict) -> dict[int, str]:
    """Container port -> published host port, from short ("[ip:]host:container") or long syntax."""
    ports = {}
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports[int(entry["target"])] = str(entry.get("published", ""))
        else:
            *host, target = str(entry).split(":")
            ports[int(target.split("/")[0])] = host[-1] if host else ""
    return ports


def published_host_addresses(service: dict) -> list[str]:
    """The host address each published port binds ("" for all interfaces)."""
    addresses = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            addresses.append(str(entry.get("host_ip", "")))
        else:
            parts = str(entry).split(":")
            addresses.append(":".join(parts[:-2]) if len(parts) > 2 else "")
    return addresses


# -- the services ------------------------------------------------------------------------------------------


def test_every_service_of_the_design_is_there():
    assert {"kafka", "redis", "topics", "validator", "gateway", "events", "ingest", "simulator"} <= set(SERVICES)
    assert set(TRACKER_SERVICES) == {"topics", "validator", "gateway", "events", "ingest", "simulator"}
    assert {SERVICES[name]["build"] for name in TRACKER_SERVICES} == {"."}


@pytest.mark.parametrize("name", TRACKER_SERVICES)
def test_tracker_services_set_only_variables_the_settings_read(name):
    env = environment(SERVICES[name])
    unknown = sorted(set(env) - ENV_NAMES)
    assert not unknown, f"{name} sets {unknown}, which tracker/settings.py does not read"
    # ... and the values parse: Settings.from_env raises SettingsError naming the variable otherwise.
    settings = Settings.from_env({key: interpolated(value) for key, value in env.items()})
    assert settings.kafka_bootstrap_servers and settings.redis_url


def test_the_image_sets_only_variables_the_settings_read():
    names = set()
    for block in re.findall(r"^ENV\s+((?:.*\\\n)*.*)$", DOCKERFILE, flags=re.MULTILINE):
        names |= set(re.findall(r"([A-Z][A-Z0-9_]*)=", block))
    ours = {name for name in names if name.startswith(("TRACKER_", "KAFKA_", "REDIS_"))}
    assert ours and ours <= ENV_NAMES, sorted(ours - ENV_NAMES)


@pytest.mark.parametrize("name", TRACKER_SERVICES)
def test_commands_exist_and_their_flags_parse(name):
    argv = command(SERVICES[name])
    assert argv[:1] == ["tracker"], f"{name} should run the tracker console script, runs {argv}"
    assert argv[1] in COMMANDS, f"{name} runs `tracker {argv[1]}`; commands are {sorted(COMMANDS)}"
    try:
        args = build_parser().parse_args(argv[1:])
    except SystemExit as exc:  # argparse's way of rejecting a flag
        pytest.fail(f"{name}: `{shlex.join(argv)}` does not parse (exit {exc.code})")
    assert args.command == argv[1]
    abbreviated = [
        flag.split("=")[0]
        for flag in argv[2:]
        if flag.startswith("--") and flag.split("=")[0] not in option_strings(argv[1])
    ]
    assert not abbreviated, f"{name}: spell out {abbreviated} (abbreviations break when a flag is added)"


def test_each_service_runs_what_the_design_says():
    assert command(SERVICES["topics"])[1] == "topics"
    assert command(SERVICES["validator"])[1] == "validate"
    assert SERVICES["validator"]["deploy"]["replicas"] == 2
    assert command(SERVICES["simulator"])[1:4] == ["simulate", "--couriers", "300"]
    gateway = build_parser().parse_args(command(SERVICES["gateway"])[1:])
    assert gateway.command == "gateway" and gateway.http_host == "0.0.0.0"  # reachable from outside
    assert command(SERVICES["events"])[1] == "events"
    ingest = build_parser().parse_args(command(SERVICES["ingest"])[1:])
    assert ingest.command == "ingest" and ingest.ingest_host == "0.0.0.0"


def test_dependencies_exist_and_their_conditions_can_be_met():
    for name, service in SERVICES.items():
        for target, condition in depends_on(service).items():
            assert target in SERVICES, f"{name} depends on unknown service {target}"
            assert condition in {"service_started", "service_healthy", "service_completed_successfully"}
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[target], f"{name} waits for {target} to be healthy: no healthcheck"
            if condition == "service_completed_successfully":  # a one-shot job, never restarted
                assert str(SERVICES[target].get("restart", "no")) == "no", target
    assert depends_on(SERVICES["topics"]) == {"kafka": "service_healthy"}
    for name in ("validator", "gateway", "events", "ingest"):
        assert depends_on(SERVICES[name]) == {"topics": "service_completed_successfully", "redis": "service_healthy"}, (
            name
        )
    assert depends_on(SERVICES["simulator"])["topics"] == "service_completed_successfully"


def test_the_gateway_port_is_published_and_health_checked():
    parsed = build_parser().parse_args(command(SERVICES["gateway"])[1:])
    port = parsed.http_port or Settings().http_port
    ports = published_ports(SERVICES["gateway"])
    assert port in ports, f"the gateway listens on {port}; published: {ports}"
    assert ports[port], "published without a host port"
    check = " ".join(map(str, SERVICES["gateway"]["healthcheck"]["test"]))
    assert f":{port}/healthz" in check


def test_brokers_and_redis_the_tracker_points_at_are_the_compose_ones():
    kafka, redis = SERVICES["kafka"], SERVICES["redis"]
    image, _, tag = kafka["image"].partition(":")
    assert image == "apache/kafka" and re.fullmatch(r"4\.\d+\.\d+", tag), kafka["image"]
    assert tuple(map(int, tag.split("."))) >= (4, 1, 0)
    assert redis["image"] == "redis:7-alpine"
    assert "healthcheck" in kafka and "healthcheck" in redis

    broker_env = environment(kafka)
    advertised = {
        address: name
        for name, address in (
            listener.split("://", 1) for listener in broker_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
        )
    }
    assert "PLAINTEXT" in broker_env["KAFKA_INTER_BROKER_LISTENER_NAME"]
    assert broker_env["KAFKA_PROCESS_ROLES"].replace(" ", "") in {"broker,controller", "controller,broker"}
    for name in TRACKER_SERVICES:
        env = environment(SERVICES[name])
        assert env["KAFKA_BOOTSTRAP_SERVERS"] in advertised, (name, advertised)
        assert env["REDIS_URL"].startswith("redis://redis:6379"), name
        # One broker: topics with more replicas than brokers cannot be created.
        assert int(env.get("TRACKER_REPLICATION_FACTOR", "1")) == 1


# -- the image ---------------------------------------------------------------------------------------------


def test_the_image_builds_the_page_and_serves_it_from_where_the_gateway_looks():
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", DOCKERFILE, flags=re.MULTILINE | re.IGNORECASE)
    assert stages[0][0].startswith("node:20") and stages[-1][0] == "python:3.11-slim", stages
    assert "npm ci" in DOCKERFILE and "npm run build" in DOCKERFILE and "pip install ." in DOCKERFILE
    node_stage = stages[0][1]
    copied = re.search(rf"^COPY\s+--from={node_stage}\s+(\S+)\s+(\S+)", DOCKERFILE, flags=re.MULTILINE)
    assert copied and copied.group(1).endswith("frontend/dist"), "the built page is not copied out of the node stage"
    static_dir = re.search(r"TRACKER_STATIC_DIR=(\S+)", DOCKERFILE)
    assert static_dir and static_dir.group(1) == copied.group(2)


def test_everything_the_image_copies_is_in_the_build_context():
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for sources in re.findall(r"^COPY\s+(?!--from)(.+)$", DOCKERFILE, flags=re.MULTILINE):
        *paths, _destination = sources.split()
        for copied in paths:
            path = copied.rstrip("/")
            if "*" in path:  # optional by design (README.md*)
                continue
            assert (ROOT / path).exists(), f"Dockerfile copies {path}, which does not exist"
            hidden = [pattern for pattern in ignored if path == pattern or path.startswith(pattern + "/")]
            assert not hidden, f"Dockerfile copies {path}, but .dockerignore excludes it ({hidden})"
    # The frontend's build inputs reach the node stage; its local builds and modules do not.
    assert "frontend/node_modules" in ignored and "frontend/dist" in ignored


def test_nothing_is_published_beyond_this_machine_unless_edited():
    published = {name: published_host_addresses(service) for name, service in SERVICES.items() if service.get("ports")}
    assert {"kafka", "gateway"} <= set(published)
    for name, addresses in published.items():
        assert addresses and all(address == "127.0.0.1" for address in addresses), (name, addresses)
