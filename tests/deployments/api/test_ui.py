"""The chat page's routes: served without a key, with a strict CSP, outside the API schema."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from deployments.api import create_app
from tests.helpers import ScriptedGenerator, make_service, publish_tiny_index


def _client(tmp_path: Path) -> TestClient:
    publish_tiny_index(tmp_path)
    service, _ = make_service(tmp_path, ScriptedGenerator())
    return TestClient(create_app(service))


def test_the_page_and_its_files_are_served_with_a_strict_policy(tmp_path: Path) -> None:
    client = _client(tmp_path)
    root = client.get("/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/ui"
    page = client.get("/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert '<label for="question">' in page.text and "/ui/static/chat.js" in page.text
    script = client.get("/ui/static/chat.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "innerHTML" not in script.text  # service text is only ever set as text
    assert client.get("/ui/static/missing.js").status_code == 404


def test_the_page_is_not_part_of_the_api_schema(tmp_path: Path) -> None:
    paths = _client(tmp_path).get("/openapi.json").json()["paths"]
    assert "/ui" not in paths and "/" not in paths
