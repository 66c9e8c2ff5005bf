"""The KubeRay manifests: valid against the vendored CRD schemas of KubeRay v1.7.0 (with
check-jsonschema), rendered from serve_config.yaml and rayjob-build.yaml without drift, and
their Serve config is one the service accepts."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERAY = ROOT / "deploy" / "kuberay"
MANIFESTS = {"rayservice.yaml": "rayservice", "rayjob-build.yaml": "rayjob",
             "raycronjob-refresh.yaml": "raycronjob"}  # fmt: skip
sys.path.insert(0, str(KUBERAY))
render = importlib.import_module("render")


@pytest.mark.parametrize(("manifest", "schema"), MANIFESTS.items())
def test_each_manifest_validates_against_its_crd_schema(manifest: str, schema: str) -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run([str(checker), "--schemafile",
                             str(KUBERAY / "schemas" / f"{schema}.json"), str(KUBERAY / manifest)],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schemas_reject_a_misspelt_field(tmp_path: Path) -> None:
    job = yaml.safe_load((KUBERAY / "rayjob-build.yaml").read_text())
    job["spec"]["shutdownAfterJobFinish"] = True  # the real field ends in "Finishes"
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(job))
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run([str(checker), "--schemafile", str(KUBERAY / "schemas/rayjob.json"),
                             str(path)], capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 1 and "shutdownAfterJobFinish" in result.stdout


def test_the_schemas_say_where_they_come_from() -> None:
    source = json.loads((KUBERAY / "schemas" / "SOURCE.json").read_text())
    assert source["tag"] == "v1.7.0" and len(source["commit"]) == 40
    assert set(source["files"]) == {"RayService", "RayJob", "RayCronJob"}


def test_the_manifests_are_rendered_without_drift() -> None:
    result = subprocess.run([sys.executable, str(KUBERAY / "render.py"), "--check"],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_a_drifted_serve_config_is_detected() -> None:
    committed = (KUBERAY / "rayservice.yaml").read_text()
    drifted = committed.replace("max_body_bytes: 64000", "max_body_bytes: 1000")
    assert drifted != committed
    assert render.rendered_service(drifted) == committed  # rendering restores it
    assert render.rendered_service(committed) == committed


def test_the_embedded_serve_config_is_one_the_service_accepts() -> None:
    from ray.serve.schema import ServeDeploySchema

    from utils.settings import ServiceSettings

    service = yaml.safe_load((KUBERAY / "rayservice.yaml").read_text())
    config = yaml.safe_load(service["spec"]["serveConfigV2"])
    schema = ServeDeploySchema.model_validate(config)
    (app,) = schema.applications
    settings = ServiceSettings.model_validate(app.args)
    assert str(settings.index_dir) == "/data/index" and schema.http_options.host == "0.0.0.0"
    module, attribute = app.import_path.split(":")
    assert callable(getattr(importlib.import_module(module), attribute))
    ours = yaml.safe_load((ROOT / "serve_config.yaml").read_text())["applications"][0]["args"]
    assert app.args["generator"] == ours["generator"]  # everything but the cluster overrides


def test_every_node_mounts_the_shared_volume() -> None:
    claim = yaml.safe_load((KUBERAY / "storage.yaml").read_text())
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for manifest in ("rayservice.yaml", "rayjob-build.yaml"):
        spec = yaml.safe_load((KUBERAY / manifest).read_text())["spec"]
        cluster = spec.get("rayClusterConfig") or spec["rayClusterSpec"]
        groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
        for group in groups:
            pod = group["template"]["spec"]
            assert {
                "name": "rag-data",
                "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]},
            } in pod["volumes"]
            assert all({"name": "rag-data", "mountPath": "/data"} in c["volumeMounts"]
                       for c in pod["containers"])  # fmt: skip


def test_the_scheduled_job_is_an_incremental_refresh_of_the_build() -> None:
    from build_index import parse_args

    build = yaml.safe_load((KUBERAY / "rayjob-build.yaml").read_text())["spec"]
    cron = yaml.safe_load((KUBERAY / "raycronjob-refresh.yaml").read_text())["spec"]
    assert cron["jobTemplate"]["entrypoint"] == build["entrypoint"] + " --refresh"
    argv = cron["jobTemplate"]["entrypoint"].split()
    assert argv[:2] == ["python", "build_index.py"] and parse_args(argv[2:]).refresh is True
