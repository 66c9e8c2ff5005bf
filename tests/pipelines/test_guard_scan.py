"""The build's indirect-injection scan on a corpus with planted injections
(tests/data/planted_injections: every section about "quokka" carries one, in plain English,
German, spaced letters, base64, chat delimiters or zero-width characters), as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragcore.index_format import QUARANTINE_FILE, current_version, load_index
from tests.pipelines.test_build_job import run_build

pytestmark = pytest.mark.integration
PLANTED = Path(__file__).resolve().parents[1] / "data/planted_injections"
PLANTED_SECTIONS = 6


def _build(tmp_path: Path, action: str) -> tuple[Path, dict[str, object], str]:
    index_dir = tmp_path / action
    result = run_build("--source", str(PLANTED), "--index-dir", str(index_dir),
                       "--guard-scan", action)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    version = current_version(index_dir)
    assert version is not None
    manifest = json.loads((index_dir / version / "manifest.json").read_text())
    return index_dir / version, manifest, result.stdout


def test_planted_injections_are_quarantined_and_never_indexed(tmp_path: Path) -> None:
    version, manifest, stdout = _build(tmp_path, "quarantine")
    scan = manifest["guard_scan"]
    assert scan["action"] == "quarantine" and scan["scanned"] == 18
    assert scan["flagged"] == scan["quarantined"] == PLANTED_SECTIONS and scan["dropped"] == 0
    assert sum(scan["by_reason"].values()) >= PLANTED_SECTIONS
    assert {f["source"].split("#")[1] for f in scan["flagged_chunks"]} == {
        "quokka-upscale-delay", "quokka-batch-wait", "quokka-handle-retries",
        "quokka-metric-labels", "quokka-log-rotation", "quokka-ingress-timeouts"}  # fmt: skip
    assert f"injection scan: {PLANTED_SECTIONS} of 18 chunks flagged" in stdout
    kept = [json.loads(line) for line in (version / QUARANTINE_FILE).read_text().splitlines()]
    assert len(kept) == PLANTED_SECTIONS and all("uokka" in r["text"] for r in kept)
    assert all(r["reasons"] for r in kept)
    served = load_index(version.parent)
    assert manifest["num_chunks"] == len(served.chunks) == 12 == served.index.ntotal
    assert not any("uokka" in c.text for c in served.chunks)  # every clean section is served


def test_drop_leaves_them_out_and_off_serves_them(tmp_path: Path) -> None:
    version, manifest, _ = _build(tmp_path, "drop")
    assert manifest["guard_scan"]["dropped"] == PLANTED_SECTIONS
    assert not (version / QUARANTINE_FILE).exists()
    _, manifest, _ = _build(tmp_path, "off")
    assert manifest["guard_scan"]["flagged"] == 0 and manifest["num_chunks"] == 18
