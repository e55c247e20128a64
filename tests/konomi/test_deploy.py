"""The Konomi compose file: seed services, ports and limits; ``docker compose config``
validates it where a docker client with the compose plugin is installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "konomi"


def _service_blocks(text: str) -> dict[str, str]:
    body = text.split("\nservices:\n", 1)[1].split("\nvolumes:\n", 1)[0]
    blocks: dict[str, str] = {}
    name = None
    for line in body.splitlines():
        if line.startswith("  ") and not line.startswith("   ") and line.strip().endswith(":"):
            name = line.strip()[:-1]
            blocks[name] = ""
        elif name:
            blocks[name] += line + "\n"
    return blocks


def test_compose_has_the_seed_services_ports_and_limits():
    blocks = _service_blocks((DEPLOY / "compose.yaml").read_text())
    assert set(blocks) == {"konomi-api", "konomi-web", "konomi-ws", "db", "redis"}
    for svc, port, cpus, mem in [
        ("konomi-api", 3001, "1", "1G"),
        ("konomi-web", 3000, "0.5", "512M"),
        ("konomi-ws", 3002, "0.5", "512M"),
    ]:
        b = blocks[svc]
        assert (
            f'"${{KONOMI_BIND:-127.0.0.1}}:{port}:{port}"' in b
            and f'cpus: "{cpus}"' in b
            and f"memory: {mem}" in b
        )
        role = svc.removeprefix("konomi-")
        assert f"ROLE: {role}" in b and f'PORT: "{port}"' in b
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert '--port "$PORT" --role "$ROLE"' in dockerfile
    # psycopg and redis are the konomi extra, not dependencies of the package.
    assert "pip install --no-cache-dir '.[konomi]'" in dockerfile
    assert "image: postgres:15" in blocks["db"] and "image: redis:7-alpine" in blocks["redis"]


#: A compose value that takes a secret from the environment and refuses to start
#: without it: ``${NAME:?message}``.
_REQUIRED_ENV = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*:\?[^}]*\}$")


def _secret_values(text: str) -> list[tuple[str, str]]:
    """(key, value) of every setting whose name says it holds a secret, and the
    password part of every URL with credentials (user:password@host)."""
    found = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip().removeprefix("- ")
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*[:=]\s*(.+)$", line)
        if not m:
            continue
        key, value = m.group(1), m.group(2).strip().strip('"')
        if re.search(r"PASSWORD|TOKEN|SECRET|KEY", key, re.IGNORECASE):
            found.append((key, value))
        for cred in re.finditer(r"://[^:/@\s]+:(\$\{[^}]*\}|[^@\s]+)@", value):
            found.append((f"{key} (URL password)", cred.group(1)))
    return found


def test_compose_takes_every_secret_from_the_environment():
    """No password or token literal: each comes from a required environment variable."""
    values = _secret_values((DEPLOY / "compose.yaml").read_text())
    literal = [(k, v) for k, v in values if not _REQUIRED_ENV.match(v)]
    assert literal == [], f"secrets written into compose.yaml: {literal}"
    keys = {k for k, _ in values}
    assert {"POSTGRES_PASSWORD", "KONOMI_TOKEN", "DB_URL (URL password)"} <= keys
    assert "--public" in (DEPLOY / "Dockerfile").read_text()


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        ok = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
        if ok.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config_accepts_the_file():
    cmd = _compose_command()
    if cmd is None:
        pytest.skip("no docker client with the compose plugin (nor docker-compose) installed")
    res = subprocess.run(
        [*cmd, "-f", str(DEPLOY / "compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=DEPLOY,
        env={**os.environ, "POSTGRES_PASSWORD": "x" * 24, "KONOMI_TOKEN": "y" * 32},
    )
    assert res.returncode == 0, res.stderr
