"""The container image and docker-compose.yml, without a Docker engine (none runs here):
hadolint passes, the image is non-root with exact pins and a health check on Serve's
/-/healthz, the build context leaves out what must never ship, the compose file validates
against the compose spec and provisions Grafana, and the Dockerfile's own build and entry
steps (deploy/docker/steps.sh) work in a fresh virtualenv."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def dockerignored() -> list[str]:
    """The entries of .dockerignore (what the build context leaves out)."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_hadolint_passes() -> None:
    result = subprocess.run([str(BIN / "hadolint"), str(ROOT / "Dockerfile")],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_non_root_pinned_and_health_checked() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER 1000$", text, re.M)
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base.group(1))
    assert "/-/healthz" in re.search(r"HEALTHCHECK[^\n]*\n[^\n]*", text).group(0)  # type: ignore[union-attr]
    installed = text.split("apt-get install")[1].split("&& rm -rf")[0]
    for package in re.findall(r"\b(lib\w+|wget)(=?\S*)", installed):
        assert package[1].startswith("="), f"{package[0]} is not pinned"
    assert text.count("FROM ") == 2  # build stage, then a runtime stage without build tools


def test_the_build_context_leaves_out_what_must_never_ship() -> None:
    ignored = set(dockerignored())
    assert {".git", ".venv", "models", "index", "state", "data"} <= ignored


def test_compose_validates_and_provisions_grafana() -> None:
    checker = BIN / "check-jsonschema"
    command = [str(checker), "--builtin-schema", "vendor.compose-spec",
               str(ROOT / "docker-compose.yml")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert {"ray-head", "ray-worker", "redis", "prometheus", "grafana"} <= set(compose["services"])
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source  # every mounted file is in the repo
    head = " ".join(compose["services"]["ray-head"]["command"])
    assert "deploy/compose/serve_config.yaml" in head


@pytest.mark.integration
def test_the_dockerfile_steps_work_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    """What `docker build` runs (install, model) and what the image runs (imports and CLIs),
    in a new virtualenv from the pins alone, on a copy of the build context (pip's cache
    makes it a few minutes)."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    app = tmp_path / "app"
    # The build context: what .dockerignore leaves, matched by name (a little more is left out).
    names = {Path(entry).name for entry in dockerignored()}
    shutil.copytree(ROOT, app, ignore=shutil.ignore_patterns(*names))
    env = {"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "VIRTUAL_ENV": str(env_dir),
           "HOME": str(Path.home()), "HF_HUB_OFFLINE": "1", "VARIANT": "cpu",
           "PIP": f"{python} -m pip --disable-pip-version-check -q"}  # fmt: skip
    for step in ("install", "model", "check"):
        result = subprocess.run(["sh", "deploy/docker/steps.sh", step], cwd=app, env=env,
                                capture_output=True, text=True, timeout=1500)  # fmt: skip
        assert result.returncode == 0, (step, result.stdout[-2000:], result.stderr[-3000:])
    assert (app / "models" / "smollm2-135m-instruct" / "config.json").exists()
