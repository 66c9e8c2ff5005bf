"""Serve search and grounded answers over a published index with Ray Serve.

    python serve_index.py --index-dir index [--config serve_config.yaml] [--port 8000]

Deploys serve_config.yaml (the same file `serve deploy` takes) with the flags laid over it,
waits until the application is running, prints its URLs and serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import yaml
from pydantic import ValidationError

from deployments.launch import APP_NAME, load_serve_config
from utils.errors import InputError, validation_line
from utils.settings import PROJECT_ROOT


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, help="published index root (overrides config)")
    parser.add_argument("--config", type=Path, default=PROJECT_ROOT / "serve_config.yaml")
    parser.add_argument("--port", type=int, default=None, help="HTTP port (default from config)")
    parser.add_argument("--host", default=None,
                        help="HTTP address to listen on (default from config; 0.0.0.0 in a "
                        "container)")  # fmt: skip
    parser.add_argument("--ray-address", default=None, help="join this cluster (or RAY_ADDRESS)")
    parser.add_argument("--no-generator", action="store_true", help="search only; /ask degrades")
    parser.add_argument("--startup-timeout", type=float, default=900.0,
                        help="seconds to wait for the app to run and report ready")  # fmt: skip
    return parser.parse_args(argv)


def load_config(args: argparse.Namespace) -> dict[str, Any]:
    """The Serve config with the flags applied; its app args validated by ServiceSettings."""
    overrides = {"generator": {"enabled": False}} if args.no_generator else None
    config = load_serve_config(args.config, args.index_dir, args.port, overrides)
    if args.host:
        config.setdefault("http_options", {})["host"] = args.host
    return config


def main(argv: list[str] | None = None) -> int:
    """Deploy, print the URLs, block until Ctrl-C, shut down."""
    args = parse_args(argv)
    try:
        config = load_config(args)
    except (OSError, KeyError, StopIteration, yaml.YAMLError) as exc:
        print(f"error: cannot read {args.config}: {exc}", file=sys.stderr)
        return 2
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"error: invalid app arg {validation_line(exc)}", file=sys.stderr)
        return 2
    import ray

    from deployments.launch import deploy, wait_ready, wait_running
    from utils.ray_runtime import init_ray

    init_ray(args.ray_address, num_cpus=8, namespace="serve", dashboard=True)
    port = deploy(config)
    base = f"http://127.0.0.1:{port}"
    print(f"deploying {APP_NAME} (first start loads the models and warms the engine: a minute "
          "or two)...", flush=True)  # fmt: skip
    try:
        started = time.monotonic()
        wait_running(APP_NAME, args.startup_timeout)
        wait_ready(base, max(60.0, args.startup_timeout - (time.monotonic() - started)))
    except (RuntimeError, TimeoutError) as exc:
        print(f"error: deployment failed: {str(exc).splitlines()[0][:500]}", file=sys.stderr)
        _shutdown()
        return 1
    print(f"API        {base}  (search: {base}/search?query=..., ask: POST {base}/ask)")
    print(f"OpenAPI    {base}/docs")
    print(f"Readiness  {base}/readyz")
    dashboard = ray.get_runtime_context().dashboard_url if hasattr(
        ray.get_runtime_context(), "dashboard_url") else None  # fmt: skip
    print(f"Dashboard  http://{dashboard or '127.0.0.1:8265'}")
    print("serving; Ctrl-C to stop", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    _shutdown()
    return 0


def _shutdown() -> None:
    import ray
    from ray import serve

    print("shutting down...", flush=True)
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
