"""CLIs fail with one readable line and a non-zero exit code, before starting anything heavy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from utils.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def test_client_reports_a_down_service_in_one_line() -> None:
    result = run("test_client.py", "--url", "http://127.0.0.1:9", "anything")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: the service is not reachable at http://127.0.0.1:9 (is serve_index.py running?)"
    ]


def test_serve_index_rejects_bad_app_args(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    config["applications"][0]["args"]["retrieval"]["top_k"] = 500
    bad = tmp_path / "serve_config.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = run("serve_index.py", "--config", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: invalid app arg retrieval.top_k")


def test_serve_config_args_validate_with_the_python_builder_model() -> None:
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    [app] = config["applications"]
    settings = ServiceSettings.model_validate(app["args"])
    assert settings.index_dir == ROOT / "index"
    assert app["import_path"] == "deployments.app:build_app"
    assert [d["name"] for d in app["deployments"]] == ["Ingress"]  # hot settings only
    for options in (settings.ingress, settings.embedder, settings.generator.deployment):
        scaling = options.autoscaling_config or {}
        assert {"min_replicas", "max_replicas", "target_ongoing_requests"} <= set(scaling)
        assert (options.max_queued_requests or 0) > 0
    assert "working_dir" not in (app.get("runtime_env") or {})


def test_a_file_that_is_not_a_serve_config_is_one_line(tmp_path: Path) -> None:
    for body in ("", "x: 1\n", "applications: [{name: other}]\n"):
        config = tmp_path / "serve_config.yaml"
        config.write_text(body)
        for cli in (("serve_index.py", "--config", str(config)),
                    ("manage_keys.py", "--config", str(config), "list")):  # fmt: skip
            result = run(*cli)
            assert result.returncode == 2, (cli, body, result.stderr)
            assert result.stderr.strip().splitlines() == [
                f"error: {config} is not a Serve config with an application named 'rag' under "
                "`applications` (see serve_config.yaml)"
            ]
