"""Two Ray nodes on one machine, each a separate `ray start` process with its own resources
(the worker has a `worker_node` resource, so placement can be asserted):
- the build job runs on both with --ray-address and says so in its summary;
- `serve deploy` of a test variant of serve_config.yaml places an Ingress replica on the worker;
- the worker is killed in the middle of a build: the app keeps answering from replicas moved
  onto the head, the build replaces the embedding actor it lost and publishes, and a re-run
  resumes entirely from the checkpoints.
The index directory is one shared directory that every node reads (on one machine, the same
filesystem; on a real cluster, shared storage)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.helpers import RayNodes, all_ready, free_port, wait_for, write_corpus

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
INGRESS = "ServeReplica:rag:Ingress"


@dataclass
class Cluster:
    nodes: RayNodes
    work: Path
    first_build: subprocess.CompletedProcess[str]
    url: str = ""


def _build_command(nodes: RayNodes, work: Path, source: Path) -> list[str]:
    """build_index.py against the cluster: two embedding actors, spread over the nodes."""
    return [sys.executable, "build_index.py", "--ray-address", nodes.address, "--source",
            str(source), "--index-dir", str(work / "index"), "--num-actors", "2"]  # fmt: skip


def build(nodes: RayNodes, work: Path, source: Path) -> subprocess.CompletedProcess[str]:
    """Run a build to its end."""
    return subprocess.run(_build_command(nodes, work, source), cwd=ROOT, env=nodes.env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip


def second_edition(root: Path, pages: int) -> Path:
    """A corpus whose text differs from write_corpus's: none of its chunks is checkpointed."""
    write_corpus(root, pages=pages)
    for page in root.glob("*.md"):
        page.write_text(page.read_text().replace("Page ", "Handbook page "))
    return root


def summary_nodes(stdout: str) -> dict[str, list[str]]:
    """Stage -> the short node ids of the summary's `nodes:` line."""
    (line,) = [x for x in stdout.splitlines() if x.startswith("nodes: ")]
    stages = {}
    for part in line.removeprefix("nodes: ").split("; "):
        stage, rest = part.split(" on ", 1)
        stages[stage] = re.findall(r"([0-9a-f]{12}): \d+", rest)
    return stages


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("cluster")
    nodes = RayNodes(Path(f"/tmp/rt-{uuid.uuid4().hex[:8]}")).start()
    try:
        write_corpus(work / "corpus", pages=200)
        yield Cluster(nodes, work, build(nodes, work, work / "corpus"))
    finally:
        serve = str(Path(sys.executable).with_name("serve"))
        subprocess.run([serve, "shutdown", "-a", nodes.dashboard, "-y"], env=nodes.env,
                       capture_output=True, timeout=120)  # fmt: skip
        nodes.stop()


def test_the_build_runs_on_both_nodes_and_says_so(cluster: Cluster) -> None:
    result = cluster.first_build
    assert result.returncode == 0, result.stderr[-2000:]
    head, worker = (cluster.nodes.node_with(r) for r in ("head_node", "worker_node"))
    stages = summary_nodes(result.stdout)
    assert sorted(stages["embed"]) == sorted([head[:12], worker[:12]])  # an actor on each
    assert set(stages["read"]) <= {head[:12], worker[:12]}


def test_serve_deploy_places_a_replica_on_the_worker(cluster: Cluster) -> None:
    from deployments.launch import load_serve_config

    port = free_port()
    overrides = {"auth": {"enabled": False, "state_dir": str(cluster.work / "state")},
                 "generator": {"enabled": False}}  # fmt: skip
    config = load_serve_config(ROOT / "serve_config.yaml", cluster.work / "index", port,
                               overrides)  # fmt: skip
    # Both nodes share this machine's ports: one proxy, on the head.
    config["proxy_location"] = "HeadOnly"
    path = cluster.work / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    serve = str(Path(sys.executable).with_name("serve"))
    deployed = subprocess.run([serve, "deploy", str(path), "-a", cluster.nodes.dashboard],
                              env=cluster.nodes.env, capture_output=True, text=True,
                              timeout=120)  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr
    cluster.url = f"http://127.0.0.1:{port}"
    wait_for(lambda: all_ready(cluster.url), 600, "both Ingress replicas ready", every=2.0)
    worker = cluster.nodes.node_with("worker_node")
    # Both replicas loaded the index from the one shared directory, the worker's among them.
    assert worker in cluster.nodes.actor_nodes(INGRESS)
    search = httpx.get(f"{cluster.url}/search", params={"query": "autoscaling"}, timeout=30)
    assert search.status_code == 200 and search.json()["results"]


def test_losing_the_worker_mid_build_keeps_serving_and_the_build_resumes(
    cluster: Cluster,
) -> None:
    assert cluster.url, "needs the app deployed by the previous test"
    head = cluster.nodes.node_with("head_node")
    checkpoints = cluster.work / "index" / ".checkpoints"
    before = len(list(checkpoints.rglob("*.npz")))
    more = second_edition(cluster.work / "more", pages=600)
    with (cluster.work / "second-build.log").open("w") as log:  # a file: no pipe to fill
        running = subprocess.Popen(
            _build_command(cluster.nodes, cluster.work, more),
            cwd=ROOT,
            env=cluster.nodes.env,
            stdout=log,
            stderr=log,
            text=True,
        )
    wait_for(lambda: len(list(checkpoints.rglob("*.npz"))) > before or running.poll() is not None,
             600, "the second build's first checkpoint", every=0.2)  # fmt: skip
    assert running.poll() is None, "the build ended before the node could be lost"
    cluster.nodes.kill_worker()
    answered = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the app keeps answering while the node is lost
        try:
            r = httpx.get(f"{cluster.url}/search", params={"query": "replicas"}, timeout=30)
            answered.append(r.status_code)
        except httpx.HTTPError as exc:
            answered.append(type(exc).__name__)  # type: ignore[arg-type]
        time.sleep(0.2)
    running.wait(timeout=900)
    stopped = (cluster.work / "second-build.log").read_text()
    assert answered.count(200) >= 0.9 * len(answered), answered
    wait_for(lambda: cluster.nodes.actor_nodes(INGRESS) == [head, head], 300,
             "both Ingress replicas on the head", every=2.0)  # fmt: skip
    assert httpx.get(f"{cluster.url}/search", params={"query": "x"}, timeout=30).status_code == 200
    # The build lost an embedding actor with the node: its batches ran on a new one.
    assert running.returncode == 0, stopped[-2000:]
    assert "embedding actor lost" in stopped and "published " in stopped
    again = build(cluster.nodes, cluster.work, more)  # a re-run resumes from the checkpoints
    assert again.returncode == 0, again.stderr[-2000:]
    assert re.search(r"\(embedded 0, reused 4200\)", again.stdout), again.stdout
