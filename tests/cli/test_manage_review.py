"""manage_review.py over a real feedback ledger: list, show, mark, stats and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import manage_review
from ragcore.feedback.ledger import SqliteFeedback
from ragcore.feedback.records import AnswerRecord
from utils.paths import PROJECT_ROOT


def _config(tmp_path: Path) -> Path:
    config = yaml.safe_load((PROJECT_ROOT / "serve_config.yaml").read_text())
    config["applications"][0]["args"]["auth"]["state_dir"] = str(tmp_path / "state")
    path = tmp_path / "serve_config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_list_show_mark_and_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    assert manage_review.main(["--config", str(config), "list"]) == 2
    assert "no review queue yet" in capsys.readouterr().err
    ledger = SqliteFeedback(tmp_path / "state" / "feedback.db")
    ledger.record([AnswerRecord("r1", "acme", "ask", "docs", "main@1", "q", reasons=("refused",)),
                   AnswerRecord("r1", "globex", "ask", "docs", "main@1", "q2",
                                reasons=("refused",))])  # fmt: skip
    args = ["--config", str(config)]
    assert manage_review.main([*args, "list"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [i["record"]["tenant"] for i in listed] == ["acme", "globex"]
    assert manage_review.main([*args, "mark", "r1"]) == 2  # two tenants used r1
    assert "more than one tenant" in capsys.readouterr().err
    assert manage_review.main([*args, "mark", "r1", "--tenant", "acme", "--note", "ok",
                               "--by", "ops"]) == 0  # fmt: skip
    marked = json.loads(capsys.readouterr().out)
    assert marked["reviewer"] == "ops" and marked["note"] == "ok"
    assert manage_review.main([*args, "show", "r1", "--tenant", "globex"]) == 0
    assert json.loads(capsys.readouterr().out)["reviewed_at"] is None
    assert manage_review.main([*args, "show", "nope"]) == 2
    assert "no review item with request_id 'nope'" in capsys.readouterr().err
    assert manage_review.main([*args, "stats"]) == 0
    assert json.loads(capsys.readouterr().out) == {"pending": 1, "ratings": {}}
