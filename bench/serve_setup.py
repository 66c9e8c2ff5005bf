"""What bench/serve_load.py deploys: our app and the book's in one Serve instance, and the
plain FastAPI server as a subprocess; each started and stopped by a context manager."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import ROOT
from deployments.launch import APP_NAME, deploy, load_serve_config, wait_ready, wait_running
from utils.settings import ServiceSettings

CONFIG = ROOT / "serve_config.yaml"
WORK_DIR = Path("/tmp/rag-serve-bench")
BOOK_MAX_ONGOING = 100  # Serve's default (5) holds requests back in the proxy's router


def _ingress_overrides(rag: dict[str, Any], version: str, replicas: int | None) -> None:
    """Pin the Ingress's user_config to `version` and, given `replicas`, fix its count (the
    config's own Ingress options, applied over the app's, must not undo either)."""
    deployments = rag.setdefault("deployments", [])
    ingress = next((d for d in deployments if d.get("name") == "Ingress"), None)
    if ingress is None:
        ingress = {"name": "Ingress"}
        deployments.append(ingress)
    ingress["user_config"] = {**(ingress.get("user_config") or {}), "index_version": version}
    if replicas:
        ingress.pop("autoscaling_config", None)
        ingress["num_replicas"] = replicas


def serve_config(
    index_dir: Path,
    version: str,
    port: int,
    ingress_replicas: int | None = None,
    rag_env: dict[str, str] | None = None,
    app_args: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """serve_config.yaml as serve_index.py deploys it, pinned to `version` in the app's args
    and in the Ingress user_config (which overrides them): a build publishing mid-run must not
    trigger a hot swap under load. `rag_env` adds env vars to our replicas (experiments);
    `app_args` are laid over the app's args."""
    args: dict[str, Any] = {"index_version": version, **(app_args or {})}
    if ingress_replicas:
        args["ingress"] = {"num_replicas": ingress_replicas, "autoscaling_config": None}
    config = load_serve_config(CONFIG, index_dir, port, args)
    rag = next(a for a in config["applications"] if a["name"] == APP_NAME)
    _ingress_overrides(rag, version, ingress_replicas)
    if rag_env:
        runtime_env = rag.setdefault("runtime_env", {})
        runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), **rag_env}
    return config


def our_settings(config: dict[str, Any]) -> ServiceSettings:
    """Our app's validated args in `config`."""
    rag = next(a for a in config["applications"] if a["name"] == APP_NAME)
    return ServiceSettings.model_validate(rag["args"])


def book_apps(
    index_dir: Path, version: str, model: str, threads: int = 0, defaults: bool = False
) -> list[dict[str, Any]]:
    """The book's single deployment (bench/baselines.py) as Serve apps: with
    max_ongoing_requests 100 at /book and, if `defaults`, with Serve's defaults at
    /book-defaults. `threads` torch threads (0: Ray's default for a 1-CPU actor)."""
    args = {"index_dir": str(index_dir), "version": version, "embedding_model": model,
            "num_threads": threads}  # fmt: skip
    env = {"env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}}
    variants = [("book", BOOK_MAX_ONGOING)] + ([("book-defaults", 0)] if defaults else [])
    return [
        {
            "name": name,
            "route_prefix": f"/{name}",
            "import_path": "bench.baselines:build_book_app",
            "runtime_env": env,
            "args": args,
            "deployments": [{"name": "BookSearch", "max_ongoing_requests": m}] if m else [],
        }
        for name, m in variants
    ]


@contextmanager
def plain_server(index_dir: Path, version: str, model: str, port: int) -> Iterator[str]:
    """The plain FastAPI baseline (bench/baselines.py) as a uvicorn subprocess; yields its base
    URL once it is ready and stops it after. Its log goes to WORK_DIR/plain-server.log."""
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "bench.baselines", "--index-dir", str(index_dir),
               "--version", version, "--model", model, "--port", str(port)]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with (WORK_DIR / "plain-server.log").open("wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(url, timeout_s=300, proc=proc)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextmanager
def serve_apps(config: dict[str, Any], timeout_s: float = 900.0) -> Iterator[str]:
    """A local Ray with every app of `config` RUNNING and ours ready (/readyz: index loaded,
    generator warm); yields our base URL, then shuts Serve and Ray down."""
    import ray
    from ray import serve

    from utils.ray_runtime import init_ray

    # Ray starts workers (every replica, the vLLM engine) at niceness 15, which on a shared
    # machine starves them next to any nice-0 job while the plain server runs at 0: run every
    # measured process at 0, so all compete on equal terms.
    os.environ["RAY_worker_niceness"] = "0"  # noqa: SIM112 (Ray reads this exact name)
    init_ray(None, num_cpus=8)
    try:
        base = f"http://127.0.0.1:{deploy(config)}"
        for app in config["applications"]:
            wait_running(app["name"], timeout_s)
        wait_ready(base, timeout_s)
        yield base
    finally:
        serve.shutdown()
        ray.shutdown()


def replica_counts() -> dict[str, int]:
    """Running replicas per app/deployment (autoscaling may add some under load)."""
    from ray import serve

    counts: dict[str, int] = {}
    for app_name, app in serve.status().applications.items():
        for name, dep in app.deployments.items():
            states = {str(getattr(k, "value", k)): n for k, n in dep.replica_states.items()}
            counts[f"{app_name}/{name}"] = int(states.get("RUNNING", 0))
    return counts
