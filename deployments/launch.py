"""Deploy a Serve config and wait for it: the one helper that serve_index.py, demo.py, the
benchmarks and the tests share. Ray must already be initialised for `deploy` and
`wait_running`; `wait_ready` only needs HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from utils.errors import InputError
from utils.paths import PROJECT_ROOT
from utils.settings import ServiceSettings, deep_merge, service_settings

APP_NAME = "rag"
# A deployment can go DEPLOY_FAILED or UNHEALTHY for a moment while Serve replaces a replica
# that died during start-up; only a failure that outlasts this grace period is final.
FAILURE_GRACE_S = 60.0


def read_rag_app(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Serve config in `path` and its `rag` application; InputError when the file is not
    such a config (empty, not a mapping, no `applications` list, no app named `rag`)."""
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    apps = config.get("applications") if isinstance(config, dict) else None
    app = next((a for a in apps if isinstance(a, dict) and a.get("name") == APP_NAME), None) \
        if isinstance(apps, list) else None  # fmt: skip
    if app is None:
        raise InputError(f"{path} is not a Serve config with an application named "
                         f"'{APP_NAME}' under `applications` (see serve_config.yaml)")  # fmt: skip
    return config, app


def rag_app_settings(path: Path) -> ServiceSettings:
    """The settings of the `rag` app in a Serve config (with RAG_SERVICE__* applied), as the
    admin CLIs read them."""
    _, app = read_rag_app(path)
    return service_settings(app.get("args") or {})


def load_serve_config(
    path: Path,
    index_dir: Path | None = None,
    port: int | None = None,
    app_args: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Serve config file with overrides laid over the `rag` app's args (validated by
    ServiceSettings, so a bad value fails here with the field's name)."""
    config, app = read_rag_app(path)
    args = deep_merge(dict(app.get("args") or {}), app_args or {})
    if index_dir is not None:
        args["index_dir"] = str(index_dir.resolve())
    ServiceSettings.model_validate(args)
    app["args"] = args
    if port is not None:
        config.setdefault("http_options", {})["port"] = port
    return config


def deploy(config: dict[str, Any]) -> int:
    """Start Serve with the config's HTTP options and deploy its apps without blocking (the
    path `serve deploy` takes); returns the HTTP port."""
    from ray.serve._private import api as serve_api
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(config)
    client = serve_api.serve_start(http_options=schema.http_options.model_dump())
    client.deploy_apps(schema, _blocking=False)
    return int(schema.http_options.port)


def wait_running(app_name: str = APP_NAME, timeout_s: float = 900.0) -> None:
    """Block until the app is RUNNING. A failure status must persist for FAILURE_GRACE_S
    before it counts (Serve replaces a dead replica in the meantime); then RuntimeError with
    the failing deployments' messages. TimeoutError past `timeout_s`."""
    from ray import serve

    deadline = time.monotonic() + timeout_s
    failing_since: float | None = None
    while time.monotonic() < deadline:
        app = serve.status().applications.get(app_name)
        status = app.status if app is not None else None
        if status == "RUNNING":
            return
        if app is not None and status in ("DEPLOY_FAILED", "UNHEALTHY"):
            failing_since = failing_since or time.monotonic()
            if time.monotonic() - failing_since > FAILURE_GRACE_S:
                messages = [f"{n}: {d.message}" for n, d in app.deployments.items() if d.message]
                raise RuntimeError("; ".join(messages) or app.message or str(status))
        else:
            failing_since = None
        time.sleep(1.0)
    raise TimeoutError(f"application {app_name} did not start within {timeout_s:.0f}s")


def wait_ready(
    url: str, timeout_s: float = 900.0, proc: subprocess.Popen[Any] | None = None
) -> httpx.Response:
    """Poll `url`/readyz until it answers 200 (index loaded, generator warm); fail early if
    `proc`, the server process, exits. Returns the 200 response."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}")
        try:
            response = httpx.get(f"{url.rstrip('/')}/readyz", timeout=5)
            if response.status_code == 200:
                return response
            last = response.text[:200]
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(1.0)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f}s (last: {last})")


def create_key(
    tenant: str,
    flags: Sequence[str] = (),
    tenant_limits: Sequence[str] = (),
    config: Path | None = None,
) -> str:
    """A new API key from the real CLI, `manage_keys.py create --tenant TENANT [flags]`, on
    the store the config names; `tenant_limits` (e.g. ["--rpm", "100"]) are first set as the
    tenant's own limits with `manage_keys.py limits`."""
    base = [sys.executable, "manage_keys.py"] + (["--config", str(config)] if config else [])
    if tenant_limits:
        subprocess.run([*base, "limits", "--tenant", tenant, *tenant_limits], cwd=PROJECT_ROOT,
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    out = subprocess.run([*base, "create", "--tenant", tenant, *flags], cwd=PROJECT_ROOT,
                         check=True, capture_output=True, text=True)  # fmt: skip
    return out.stdout.strip().splitlines()[-1]


@contextmanager
def serve_index_process(
    index_dir: str | Path,
    port: int,
    env: dict[str, str] | None = None,
    ready_timeout_s: float = 900.0,
    stop_timeout_s: float = 180.0,
    extra_args: Sequence[str] = (),
) -> Iterator[str]:
    """Run `serve_index.py` (with `extra_args`, e.g. --config FILE) in a subprocess for the
    `with` block; yields its URL once /readyz is 200. Stopped with SIGTERM (a process started
    in the background ignores SIGINT), killed if it has not exited after `stop_timeout_s`."""
    command = [sys.executable, "serve_index.py", "--index-dir", str(index_dir),
               "--port", str(port), *extra_args]  # fmt: skip
    server = subprocess.Popen(command, cwd=PROJECT_ROOT, env={**os.environ, **(env or {})})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, ready_timeout_s, server)
        yield url
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=stop_timeout_s)
        except subprocess.TimeoutExpired:
            server.kill()
