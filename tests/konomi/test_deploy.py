"""The Konomi compose file: seed services, ports and limits; ``docker compose config``
validates it where a docker client with the compose plugin is installed."""

from __future__ import annotations

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
        assert f'"{port}:{port}"' in b and f'cpus: "{cpus}"' in b and f"memory: {mem}" in b
        role = svc.removeprefix("konomi-")
        assert f"ROLE: {role}" in b and f'PORT: "{port}"' in b
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert '--port "$PORT" --role "$ROLE"' in dockerfile
    assert "image: postgres:15" in blocks["db"] and "image: redis:7-alpine" in blocks["redis"]


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
    )
    assert res.returncode == 0, res.stderr
