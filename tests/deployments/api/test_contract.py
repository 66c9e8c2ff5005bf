"""The OpenAPI contract under fuzzing: schemathesis over /openapi.json finds no failure.

The app is the real FastAPI app over the real index manager and search engine, served by
uvicorn on loopback; the embedder and the generator are fast stand-ins (the HTTP contract is
what is under test; the integration suite runs the real models). The seed is fixed so that a
failure replays: `st run URL/openapi.json --seed 20261123 ...` with the flags below.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from deployments.api import create_app
from tests.helpers import ScriptedGenerator, free_port, make_service, publish_tiny_index, wait_for

SEED = 20261123
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,negative_data_rejection")  # fmt: skip


@pytest.fixture
def served_api(tmp_path: Path) -> Iterator[str]:
    publish_tiny_index(tmp_path)
    service, _ = make_service(tmp_path, ScriptedGenerator())
    port = free_port()
    config = uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, "uvicorn to start")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def test_schemathesis_finds_no_failure(served_api: str, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{served_api}/openapi.json",
               "--phases", "coverage,fuzzing", "--checks", CHECKS, "--seed", str(SEED),
               "--max-examples", "250", "--workers", "1",
               "--suppress-health-check", "all", "--no-color"]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=900, check=False, cwd=tmp_path
    )  # its example cache stays out of the repository
    report = "\n".join(line[:300] for line in result.stdout.splitlines()[-150:])
    assert result.returncode == 0, f"schemathesis found failures (seed {SEED}):\n{report}"
    assert "passed" in result.stdout.lower()
    print(report[-800:])
