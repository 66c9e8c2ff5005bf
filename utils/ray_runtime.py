"""Start or join Ray the same way from every entry point."""

from __future__ import annotations

import os

import ray

from utils.settings import PROJECT_ROOT


def init_ray(address: str | None, num_cpus: int, namespace: str = "rag") -> None:
    """Join `address` (or RAY_ADDRESS) when given; otherwise start a local Ray on 127.0.0.1 with
    `num_cpus` logical CPUs, more than the cores, since crawl tasks mostly wait on I/O."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    runtime_env = {"env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}}
    if address:
        ray.init(
            address=address,
            namespace=namespace,
            log_to_driver=False,
            runtime_env={
                **runtime_env,
                "working_dir": str(PROJECT_ROOT),
                "excludes": [".venv", "index", "models", ".git"],
            },
        )
    else:
        ray.init(
            _node_ip_address="127.0.0.1",
            num_cpus=num_cpus,
            namespace=namespace,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env=runtime_env,
            configure_logging=False,
        )
