"""The files a city deploys with: compose.yaml, the Dockerfile, deploy/Caddyfile, deploy/systemd.

compose.yaml is checked against the Compose Specification's JSON schema (deploy/compose-spec),
and by `docker compose config` where the Compose plugin is installed; then, like the other
files, against what the processes need: one image and one set of settings for every role, two
web workers or more behind the proxy, the migrations before the workers, graceful stops, and
commands that the `coupdepouce` command line has. Nothing here needs the network or Docker.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer.main
import yaml
from typer.core import TyperGroup

from bot.channels.webchat import STATIC_FILES
from bot.cli import app as cli_app
from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
CADDYFILE = ROOT / "deploy" / "Caddyfile"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
SYSTEMD = ROOT / "deploy" / "systemd"
SCHEMA = ROOT / "deploy" / "compose-spec" / "compose-spec.json"
INSTALLED_COMMAND = "/opt/coupdepouce/bin/coupdepouce"  # what deploy/systemd runs
WORKER_PORT = 8080  # what every worker listens on in its container
# Read by compose.yaml or by Caddy, not by the bot.
DEPLOYMENT_VARIABLES = {"DOMAIN", "POSTGRES_PASSWORD", "WEB_UPSTREAMS"}
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "RestrictSUIDSGID": "yes",
    "CapabilityBoundingSet": "",
}


# --- reading the files ---------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def services() -> dict[str, dict[str, Any]]:
    return dict(compose()["services"])


def workers() -> dict[str, dict[str, Any]]:
    """The services that run the `coupdepouce` image: the migration and every role."""
    return {
        name: service
        for name, service in services().items()
        if service.get("command", [""])[0] in {"run", "db"}
    }


def role_of(service: dict[str, Any]) -> str | None:
    command = service["command"]
    if command[:1] != ["run"]:
        return None
    return str(command[command.index("--role") + 1]) if "--role" in command else "all"


def services_with_role(role: str) -> list[str]:
    return sorted(name for name, service in workers().items() if role_of(service) == role)


def env_example() -> dict[str, str]:
    """The settings deploy/env.example sets, and those it shows commented out, as written."""
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"#?([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            values[match[1]] = match[2]
    return values


def interpolate(text: str, variables: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:?message} and ${NAME:-default}."""

    def value(match: re.Match[str]) -> str:
        name, operator, argument = match[1], match[2], match[3]
        if variables.get(name):
            return variables[name]
        assert operator != ":?", f"compose stops without {name}: {argument}"
        return argument if operator == ":-" else ""

    return re.sub(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:\?|:-)([^}]*))?\}", value, text)


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, argument = line.strip().partition(" ")
            instructions.append((keyword.upper(), argument.strip()))
    return instructions


def instruction(keyword: str) -> list[str]:
    return [argument for found, argument in dockerfile() if found == keyword]


def caddy_upstreams() -> list[str]:
    """The web workers deploy/Caddyfile proxies to when WEB_UPSTREAMS is not set."""
    found = re.findall(
        r"reverse_proxy (?:@\w+ )?\{\$WEB_UPSTREAMS:([^}]*)\}", CADDYFILE.read_text()
    )
    assert found, "deploy/Caddyfile proxies to {$WEB_UPSTREAMS:default upstreams}"
    assert len(set(found)) == 1, f"every reverse_proxy has the same workers: {found}"
    return found[0].split()


def unit_files() -> list[Path]:
    return sorted(SYSTEMD.glob("*.service")) + sorted(SYSTEMD.glob("*.target"))


def unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file: each section's settings, each with its values in order."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def worker_units() -> list[Path]:
    return [
        path for path in SYSTEMD.glob("*.service") if path.name != "coupdepouce-migrate.service"
    ]


def exec_start(path: Path) -> list[str]:
    """The `coupdepouce` arguments of a unit's ExecStart (past /usr/bin/env VAR=value)."""
    (line,) = unit(path)["Service"]["ExecStart"]
    words = shlex.split(line)
    assert INSTALLED_COMMAND in words, f"{path.name} runs {INSTALLED_COMMAND}: {line}"
    return words[words.index(INSTALLED_COMMAND) + 1 :]


def environment_of(path: Path) -> dict[str, str]:
    """What a unit's ExecStart sets through /usr/bin/env."""
    words = shlex.split(unit(path)["Service"]["ExecStart"][0])
    if Path(words[0]).name != "env":
        return {}
    return dict(word.split("=", 1) for word in words[1:] if "=" in word)


def deployment_commands() -> Iterator[tuple[str, list[str]]]:
    """Every `coupdepouce …` the deployment files run, and where."""
    entrypoint = json.loads(instruction("ENTRYPOINT")[-1])
    yield "Dockerfile", [*entrypoint[1:], *json.loads(instruction("CMD")[-1])]
    for name, service in workers().items():
        yield f"compose.yaml: {name}", list(service["command"])
    for path in SYSTEMD.glob("*.service"):
        yield path.name, exec_start(path)


def cli_command(arguments: list[str]) -> tuple[Any, list[str]]:
    """The `coupdepouce` (sub)command these arguments name, and the arguments left for it."""
    command: Any = typer.main.get_command(cli_app)
    rest = list(arguments)
    while isinstance(command, TyperGroup) and rest and not rest[0].startswith("-"):
        found = command.commands.get(rest[0])
        assert found is not None, f"coupdepouce has no command {' '.join(arguments)!r}"
        command, rest = found, rest[1:]
    assert not isinstance(command, TyperGroup), f"{' '.join(arguments)!r} names no command"
    return command, rest


# --- compose.yaml --------------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = [
        f"{'/'.join(str(part) for part in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(compose())
    ]
    assert errors == []


def compose_commands() -> list[list[str]]:
    """How to call Compose v2 here: the Docker CLI plugin, or the standalone binary."""
    found = []
    if shutil.which("docker"):
        found.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        found.append(["docker-compose"])
    usable = []
    for command in found:
        version = subprocess.run(
            [*command, "version", "--short"], capture_output=True, text=True, timeout=60
        )
        if version.returncode == 0 and re.match(r"v?[2-9]\.", version.stdout.strip()):
            usable.append(command)
    return usable


def test_docker_compose_reads_the_file(tmp_path: Path) -> None:
    commands = compose_commands()
    if not commands:
        pytest.skip(
            "Docker Compose v2 is not installed (Debian 12 packages only the old Python "
            "docker-compose 1.29); compose.yaml is checked against the Compose Specification's "
            "schema instead"
        )
    # Where a city would run it: the repository's files, and a .env made from the example.
    for name in ("compose.yaml", "Dockerfile"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env")
    result = subprocess.run(
        [*commands[0], "--project-directory", str(tmp_path), "-f", "compose.yaml", "config", "-q"],
        cwd=tmp_path,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_every_role_runs_the_same_image_with_the_same_settings() -> None:
    found = workers()
    assert {"migrate", "dispatcher", "scheduler"} <= set(found)
    for key in ("image", "build", "env_file", "environment"):
        values = {json.dumps(service.get(key), sort_keys=True) for service in found.values()}
        assert len(values) == 1, f"every worker has the same {key}: {values}"
    assert next(iter(found.values()))["env_file"] in (".env", [".env"])


def test_there_are_web_workers_a_dispatcher_and_a_scheduler() -> None:
    assert len(services_with_role("web")) >= 2
    assert services_with_role("dispatcher") == ["dispatcher"]
    assert services_with_role("scheduler") == ["scheduler"]
    # `all` is for one process alone; here each role is a service of its own.
    assert services_with_role("all") == []
    for name in services_with_role("web"):  # Caddy checks each by its name
        assert "replicas" not in services()[name].get("deploy", {}), name


def test_the_migrations_run_once_before_the_workers() -> None:
    migrate = services()["migrate"]
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert "pg_isready" in services()["postgres"]["healthcheck"]["test"]
    for name, service in workers().items():
        if name != "migrate":
            assert service["depends_on"] == {
                "migrate": {"condition": "service_completed_successfully"}
            }, name


def test_workers_share_one_postgresql_and_listen_where_caddy_looks() -> None:
    environment = workers()["migrate"]["environment"]
    variables = env_example()
    url = interpolate(environment["DATABASE_URL"], variables)
    assert url.startswith("postgresql+asyncpg://coupdepouce:")
    assert url.endswith("@postgres:5432/coupdepouce")
    postgres = services()["postgres"]["environment"]
    assert postgres["POSTGRES_USER"] == postgres["POSTGRES_DB"] == "coupdepouce"
    assert environment["HTTP_HOST"] == "0.0.0.0"
    assert int(environment["HTTP_PORT"]) == WORKER_PORT


def test_long_running_services_restart_and_stop_gracefully() -> None:
    for name, service in services().items():
        if name == "migrate":
            continue
        assert service["restart"] in {"unless-stopped", "always"}, name
        grace = re.fullmatch(r"(\d+)s", service.get("stop_grace_period", "10s"))
        assert grace and int(grace[1]) >= 30, f"{name} has 30 s or more to stop"
    for name in workers():
        assert workers()[name].get("stop_signal", "SIGTERM") == "SIGTERM", name


def test_caddy_routes_to_every_web_worker_and_checks_them() -> None:
    web = services_with_role("web")
    assert sorted(caddy_upstreams()) == [f"{name}:{WORKER_PORT}" for name in web]
    assert "WEB_UPSTREAMS" not in services()["caddy"].get("environment", {})
    text = CADDYFILE.read_text(encoding="utf-8")
    assert re.search(r"^\{\$DOMAIN\} \{$", text, re.MULTILINE), "the site is {$DOMAIN}"
    assert re.search(r"^\s*health_uri /readyz$", text, re.MULTILINE)
    caddy = services()["caddy"]
    assert caddy["image"].startswith("caddy:2")
    assert {"80:80", "443:443"} <= set(caddy["ports"])
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    assert set(caddy["depends_on"]) == set(web)


def test_the_workers_trust_caddy_alone() -> None:
    """X-Forwarded-For and -Proto are believed from Caddy's fixed address, which Docker never
    hands to another container."""
    (network,) = services()["caddy"]["networks"]
    address = ipaddress.ip_address(services()["caddy"]["networks"][network]["ipv4_address"])
    (pool,) = compose()["networks"][network]["ipam"]["config"]
    assert address in ipaddress.ip_network(pool["subnet"])
    assert address not in ipaddress.ip_network(pool["ip_range"])
    for name, service in workers().items():
        assert service["environment"]["TRUSTED_PROXY"] == str(address), name
    for name in services_with_role("web"):
        assert network in services()[name]["networks"], f"{name} is on Caddy's network"


def test_caddy_reads_the_caddyfile() -> None:
    """With the default upstreams (compose) and with those of deploy/systemd."""
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed (Debian's caddy package): the Caddyfile is read here")
    # deploy/systemd: coupdepouce-web@8081 and @8082, each on its instance's port.
    assert environment_of(SYSTEMD / "coupdepouce-web@.service") == {"HTTP_PORT": "%i"}
    for upstreams in (None, ["127.0.0.1:8081", "127.0.0.1:8082"]):
        environment = {"PATH": "/usr/bin:/bin", "DOMAIN": "conseils.example.fr"}
        if upstreams:
            environment["WEB_UPSTREAMS"] = " ".join(upstreams)
        result = subprocess.run(
            [caddy, "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        config = json.loads(result.stdout)
        (server,) = config["apps"]["http"]["servers"].values()
        (route,) = server["routes"]
        assert route["match"] == [{"host": ["conseils.example.fr"]}]
        proxies = [
            (subroute.get("match"), handler)
            for sub in route["handle"]
            for subroute in sub.get("routes", [])
            for handler in subroute["handle"]
            if handler["handler"] == "reverse_proxy"
        ]
        # What people open goes by their address, the rest (webhooks) where it is quieter.
        assert [
            (match, proxy["load_balancing"]["selection_policy"]) for match, proxy in proxies
        ] == [
            ([{"path": ["/", "/chat/*", "/dashboard", "/dashboard/*"]}], {"policy": "ip_hash"}),
            (None, {"policy": "least_conn"}),
        ]
        for _match, proxy in proxies:
            dials = [upstream["dial"] for upstream in proxy["upstreams"]]
            assert dials == (upstreams or caddy_upstreams())
            assert proxy["health_checks"]["active"]["uri"] == "/readyz"


# --- the settings ---------------------------------------------------------------------------


def test_env_example_names_only_settings_that_exist() -> None:
    known = {name.upper() for name in Settings.model_fields} | DEPLOYMENT_VARIABLES
    assert set(env_example()) - known == set()
    for service in workers().values():
        assert set(service["environment"]) - known == set()


def test_example_settings_make_a_split_deployment() -> None:
    """env.example with compose's own settings: PostgreSQL, Telegram by webhook (the web
    workers are several), Caddy trusted, the public address on DOMAIN."""
    example = env_example()
    written = {
        name: value
        for name, value in example.items()
        if name not in DEPLOYMENT_VARIABLES and value and not name.startswith("WHATSAPP")
    }
    environment = {
        name: interpolate(str(value), example)
        for name, value in workers()["migrate"]["environment"].items()
    }
    values = {**written, **environment, "TELEGRAM_BOT_TOKEN": "123456:ABC"}
    # Validated as given: neither this process's environment nor a .env file adds to them.
    settings = Settings.model_validate({name.lower(): value for name, value in values.items()})
    assert not settings.is_sqlite
    assert settings.webhook_url == f"https://{example['DOMAIN']}/telegram/webhook"
    assert settings.public_url == f"https://{example['DOMAIN']}"
    assert settings.trusted_proxy


# --- the image ------------------------------------------------------------------------------


def test_the_image_runs_the_command_line_as_a_user() -> None:
    froms = instruction("FROM")
    assert all(line.split()[0] == "python:3.11-slim" for line in froms)
    assert json.loads(instruction("ENTRYPOINT")[-1]) == ["coupdepouce"]
    assert json.loads(instruction("CMD")[-1]) == ["run"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "coupdepouce" in scripts
    user = instruction("USER")[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert instruction("EXPOSE") == [str(WORKER_PORT)]
    assert "HTTP_HOST=0.0.0.0" in " ".join(instruction("ENV"))
    (healthcheck,) = instruction("HEALTHCHECK")
    assert "/healthz" in healthcheck and "urllib" in healthcheck
    installs = [line for line in instruction("RUN") if "pip install" in line]
    assert installs and all("[" not in line for line in installs), "no extras in the image"


def test_the_image_is_built_without_secrets_or_the_local_virtualenv() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", "everything is left out but what is named"
    kept = {rule.removeprefix("!").rstrip("/") for rule in rules if rule.startswith("!")}
    assert not kept & {".env", ".venv", "tests", ".git"}
    copied = {
        word.rstrip("/")
        for line in instruction("COPY")
        if "--from" not in line
        for word in line.split()[:-1]
    }
    assert copied <= kept, "every file the build copies is in its context"


def test_the_installed_package_carries_the_web_chat_files() -> None:
    """The image installs the package (not an editable copy): what the web chat serves must
    be package data."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["bot"]
    for name in STATIC_FILES:
        assert any(fnmatch(f"channels/static/{name}", pattern) for pattern in patterns), name


# --- the command lines ----------------------------------------------------------------------


def test_deployment_files_name_commands_of_the_command_line() -> None:
    for where, arguments in deployment_commands():
        command, _ = cli_command(arguments)
        assert command.name in {"run", "upgrade"}, where


def test_deployment_files_name_roles_of_run() -> None:
    run, _ = cli_command(["run"])
    if "role" not in {parameter.name for parameter in run.params}:
        pytest.skip("`coupdepouce run` has no --role option in this version")
    for where, arguments in deployment_commands():
        command, rest = cli_command(arguments)
        command.make_context(command.name, list(rest))  # raises on an unknown option or role
        assert command.name != "run" or where == "Dockerfile" or "--role" in rest, where


# --- systemd --------------------------------------------------------------------------------


def test_systemd_units_run_each_role_after_the_migrations() -> None:
    roles = {path.name: exec_start(path) for path in SYSTEMD.glob("*.service")}
    assert roles == {
        "coupdepouce-migrate.service": ["db", "upgrade"],
        "coupdepouce-web@.service": ["run", "--role", "web"],
        "coupdepouce-dispatcher.service": ["run", "--role", "dispatcher"],
        "coupdepouce-scheduler.service": ["run", "--role", "scheduler"],
    }
    migrate = unit(SYSTEMD / "coupdepouce-migrate.service")["Service"]
    assert migrate["Type"] == ["oneshot"] and migrate["RemainAfterExit"] == ["yes"]
    for path in worker_units():
        sections = unit(path)
        assert sections["Unit"]["Requires"] == ["coupdepouce-migrate.service"], path.name
        assert "coupdepouce-migrate.service" in sections["Unit"]["After"][0].split(), path.name
        service = sections["Service"]
        assert service["KillSignal"] == ["SIGTERM"], path.name
        assert service["TimeoutStopSec"] == ["30"], path.name
        assert service["Restart"] == ["on-failure"], path.name
    # Each process listens for /healthz and /readyz: the web workers on their instance's port,
    # the others on ports of their own.
    ports = [environment_of(path)["HTTP_PORT"] for path in worker_units()]
    assert "%i" in ports and len(set(ports)) == len(ports)


def test_systemd_units_run_as_a_hardened_user_with_the_settings_file() -> None:
    for path in SYSTEMD.glob("*.service"):
        service = unit(path)["Service"]
        assert service["User"] == ["coupdepouce"], path.name
        assert service["EnvironmentFile"] == ["/etc/coupdepouce/env"], path.name
        for key, value in HARDENING.items():
            assert service.get(key) == [value], f"{path.name}: {key}={value}"
        assert unit(path)["Install"]["WantedBy"] == ["coupdepouce.target"], path.name


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the units are read by the tests above")
    # The units run the command from /opt/coupdepouce, which systemd checks: here, this one.
    installed = Path(sys.executable).with_name("coupdepouce")
    here = str(installed if installed.exists() else Path(sys.executable))
    for path in unit_files():
        text = path.read_text(encoding="utf-8").replace(INSTALLED_COMMAND, here)
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    (tmp_path / "coupdepouce-web@8081.service").symlink_to("coupdepouce-web@.service")
    names = [path.name for path in unit_files() if "@." not in path.name]
    result = subprocess.run(
        [analyze, "verify", "--man=no", "--generators=no"]
        + [str(tmp_path / name) for name in [*names, "coupdepouce-web@8081.service"]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # An unknown setting is only a warning: any word about the units fails too.
    said = [line for line in (result.stdout + result.stderr).splitlines() if "coupdepouce" in line]
    assert result.returncode == 0 and said == [], result.stdout + result.stderr
