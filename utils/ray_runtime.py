"""Start or join Ray the same way from every entry point."""

from __future__ import annotations

import os

import ray

from utils.settings import PROJECT_ROOT

METRICS_EXPORT_PORT = 8080  # Ray's Prometheus endpoint on each node (ops/prometheus.yml)

# Ray Serve's high-throughput mode (Ray >= 2.55): HAProxy, a load balancer written in C, takes
# HTTP in place of Serve's Python proxy actor and forwards to each ingress replica's own HTTP
# server, and replicas call each other over gRPC. The Python proxy cost about 5 ms of CPU per
# request, a third of a /search on these cores (docs/benchmarks.md, "Serving load"). Serve reads
# these when its controller, proxies and replicas start, so they are set before Ray starts; an
# operator's own values win (RAY_SERVE_ENABLE_HA_PROXY=0 RAY_SERVE_THROUGHPUT_OPTIMIZED=0 brings
# the Python proxy back). A cluster that serve_index.py joins keeps the mode it was started in.
# A replica leaving keeps serving for the drain period so that load balancers can deregister it;
# HAProxy here learns of it from the controller at once and retries a refused connection, and
# Serve's 30 s default outlasts serve.shutdown's own 30 s, which then kills the controller.
SERVE_HIGH_THROUGHPUT_ENV = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2",
}


def serve_env() -> dict[str, str]:
    """The Serve mode settings for a Ray started here: the high-throughput defaults, with any
    value already in the environment kept."""
    return {name: os.environ.get(name, value) for name, value in SERVE_HIGH_THROUGHPUT_ENV.items()}


def ha_proxy_ingress() -> bool:
    """Whether Serve started from here runs HAProxy as its ingress (the mode `init_ray` sets,
    unless the operator turned it off), rather than its Python proxy actor."""
    return serve_env()["RAY_SERVE_ENABLE_HA_PROXY"] == "1"


def init_ray(
    address: str | None,
    num_cpus: int,
    namespace: str = "rag",
    dashboard: bool = False,
    metrics_export_port: int | None = None,
) -> None:
    """Join `address` (or RAY_ADDRESS) when given; otherwise start a local Ray on 127.0.0.1 with
    `num_cpus` logical CPUs: more than the cores, since crawl tasks mostly wait on I/O and vLLM
    stalls when Ray has only the 2 physical cores to hand out."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    env = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if address:
        # Ship the project code to the cluster's workers; models and indexes stay out.
        runtime_env = {"env_vars": env, "working_dir": str(PROJECT_ROOT),
                       "excludes": [".venv", "index", "models", ".git", "*.npz"]}  # fmt: skip
        ray.init(address=address, namespace=namespace, log_to_driver=False,
                 runtime_env=runtime_env)  # fmt: skip
        return
    serve_mode = serve_env()
    os.environ.update(serve_mode)  # the raylet, so Serve's controller and proxies, inherit it
    env |= serve_mode
    ray.init(
        _node_ip_address="127.0.0.1",
        num_cpus=num_cpus,
        namespace=namespace,
        include_dashboard=dashboard,
        dashboard_host="127.0.0.1",
        log_to_driver=False,
        runtime_env={"env_vars": env},
        configure_logging=False,
        _metrics_export_port=metrics_export_port or (METRICS_EXPORT_PORT if dashboard else None),
    )
