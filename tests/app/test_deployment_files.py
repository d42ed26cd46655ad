"""The deployment files (Dockerfile, compose.yaml, deploy/) agree with the code: every Trainyard
service's command is one the CLI takes, every variable is a setting that parses, the load
balancer reaches every web process, and the image runs as a non-root user.

No Docker daemon runs here, so the files are read, not run: each check is one a user would
otherwise only meet at `docker compose up`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from app.__main__ import parser
from app.config import SETTINGS, load_config
from integration.credentials import SecretBox
from thread_layer.celery_queue import parse_queues

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
#: the services that run Trainyard's image
TRAINYARD = {name: s for name, s in SERVICES.items() if s.get("build") == "."}
#: variables of Trainyard's services that are not Trainyard settings, and who reads them
FOREIGN_VARIABLES = {"AWS_ACCESS_KEY_ID": "boto3", "AWS_SECRET_ACCESS_KEY": "boto3",
                     "AWS_CONFIG_FILE": "boto3"}
SUBSTITUTION = re.compile(r"\$\{(\w+)(?::?[?-][^}]*)?\}")


def _environment(service: dict, tmp_path: Path) -> dict[str, str]:
    """The service's variables with compose's ``${NAME:?...}`` filled as a user must."""
    given = {"SECRET_KEY": "s" * 48, "SECRETS_KEY": SecretBox.generate_key()}
    values = {}
    for name, value in service["environment"].items():
        text = str(value)
        for needed in SUBSTITUTION.findall(text):
            assert needed in given, f"{name} needs {needed}, which this test does not know"
        values[name] = SUBSTITUTION.sub(lambda m: given[m.group(1)], text)
    return {**values, "INSTANCE_DIR": str(tmp_path / "instance"),
            "DATA_DIR": str(tmp_path / "data")}


def test_the_compose_file_runs_two_web_processes_workers_and_their_servers():
    commands = {name: s["command"] for name, s in TRAINYARD.items()}
    web = [name for name, command in commands.items() if "worker" not in command]
    workers = [name for name, command in commands.items() if "worker" in command]
    assert len(web) == 2 and len(workers) >= 2
    for needed in ("redis", "postgres", "minio", "mongodb"):
        assert needed in SERVICES
    for name, service in SERVICES.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in SERVICES, f"{name} depends on the unknown {dependency}"


@pytest.mark.parametrize("name", sorted(TRAINYARD))
def test_every_trainyard_command_is_one_the_cli_takes(name):
    command = TRAINYARD[name]["command"]
    assert command[:3] == [".venv/bin/python", "-m", "app"], command
    args = parser().parse_args(command[3:])  # exits (SystemExit) on what it does not take
    if args.command == "worker":
        assert args.queues, f"{name}: say which queues the worker takes"
        parse_queues(args.queues)  # raises on an unknown queue


@pytest.mark.parametrize("name", sorted(TRAINYARD))
def test_every_variable_is_a_setting_whose_value_parses(name, tmp_path):
    environ = _environment(TRAINYARD[name], tmp_path)
    unknown = set(environ) - set(SETTINGS) - set(FOREIGN_VARIABLES)
    assert not unknown, f"{name} sets variables Trainyard does not read: {sorted(unknown)}"
    config = load_config(environ)  # ConfigError names a value that does not parse
    assert config["SOCKETIO_MESSAGE_QUEUE"] and config["CELERY_BROKER_URL"]
    scheme = config["DATABASE_URL"].split(":", 1)[0]
    assert scheme in ("postgresql", "mongodb"), "several processes need a database server"
    host = config["DATABASE_URL"].split("@", 1)[1].split(":", 1)[0]
    assert host in SERVICES
    for url in (config["CELERY_BROKER_URL"], config["SOCKETIO_MESSAGE_QUEUE"]):
        assert url.split("//", 1)[1].split(":", 1)[0] in SERVICES


def test_the_shared_secrets_are_required_not_generated_per_container():
    """Each container would otherwise generate its own: sessions signed by one web process
    would be refused by the other, and workers could not read stored credentials."""
    environment = COMPOSE["x-trainyard"]["environment"]
    for name in ("SECRET_KEY", "SECRETS_KEY"):
        assert re.fullmatch(r"\$\{" + name + r":\?.+\}", environment[name]), environment[name]


def test_the_load_balancer_reaches_every_web_process_sticky_with_websockets():
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    web = {name for name, s in TRAINYARD.items() if "worker" not in s["command"]}
    port = load_config({"INSTANCE_DIR": "/nonexistent-never-written"}, overrides={
        "SECRET_KEY": "x", "SECRETS_KEY": SecretBox.generate_key()})["TRAINYARD_PORT"]
    assert set(re.findall(r"server ([\w-]+):" + str(port), conf)) == web
    assert "ip_hash;" in conf  # Socket.IO's polling needs one process per session
    assert "proxy_set_header Upgrade $http_upgrade;" in conf
    proxy = SERVICES["proxy"]
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in proxy["volumes"]
    hops = {name: TRAINYARD[name]["environment"].get("TRUSTED_PROXY_HOPS") for name in web}
    assert set(hops.values()) == {"1"}, "the web processes sit behind exactly one proxy"


def test_the_image_runs_the_readme_install_as_a_non_root_user():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert "RUN bash scripts/bootstrap.sh python" in lines  # what `make run` installs
    user_at = max(i for i, line in enumerate(lines) if line.startswith("USER "))
    install_at = lines.index("RUN bash scripts/bootstrap.sh python")
    assert user_at < install_at, "the venv must belong to the user that runs it"
    cmd = [line for line in lines if line.startswith("CMD ")][-1]  # not HEALTHCHECK's
    assert yaml.safe_load(cmd[4:]) == TRAINYARD["web-1"]["command"]
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", "node_modules", "data", "instance", ".env", ".git"} <= ignored


def test_the_default_storage_is_the_minio_bucket_compose_creates():
    path = TRAINYARD["web-1"]["environment"]["AWS_CONFIG_FILE"]
    assert path.startswith("/opt/trainyard/")
    local = ROOT / path.removeprefix("/opt/trainyard/")
    text = local.read_text()
    assert "addressing_style = path" in text and "endpoint_url = http://minio:9000" in text
    assert "WORKDIR /opt/trainyard" in (ROOT / "Dockerfile").read_text()
    bucket = TRAINYARD["web-1"]["environment"]["STORAGE_URI"].removeprefix("s3://")
    assert f"local/{bucket.split('/')[0]}" in SERVICES["minio-bucket"]["command"][0]
