"""evaluate.py variants: every variant of a served app side by side, forced with X-Variant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import evaluate
from deployments.api import create_app
from tests.helpers import (
    PAGES,
    ScriptedGenerator,
    app_on_loopback,
    make_service,
    publish_tiny_index,
)

VARIANTS = {"items": [{"name": "main"},
                      {"name": "narrow", "weight": 0, "retrieval": {"top_k": 1}}]}  # fmt: skip


def test_each_variant_is_scored_side_by_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    publish_tiny_index(tmp_path)
    service, _ = make_service(tmp_path, ScriptedGenerator("Use serve.batch to batch [1]."),
                              variants=VARIANTS)  # fmt: skip
    qa = tmp_path / "qa.jsonl"
    # Each question names another page than its own words match: only a deeper top-k finds it.
    topics = list(PAGES)
    qa.write_text("".join(json.dumps({"question": f"What about {topic}?",
                                      "source": f"docs/{topics[i - 1]}.md"}) + "\n"
                          for i, topic in enumerate(topics)))  # fmt: skip
    with app_on_loopback(create_app(service)) as url:
        code = evaluate.main(["variants", "--qa", str(qa), "--url", url, "--variants", "main",
                              "narrow", "--k", "1", "3"])  # fmt: skip
        assert code == 0
        last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        unknown = evaluate.main(["variants", "--qa", str(qa), "--url", url, "--variants", "nope"])
    results = last["results"]
    assert set(results) == {"main", "narrow"} and last["variants"] == ["main", "narrow"]
    for name in ("main", "narrow"):
        assert results[name]["search_questions"] == 3 and results[name]["errors"] == 0
        assert results[name]["questions"] == 3 and "page_hit@3" in results[name]
    # /search names its k, so both rank alike; the questions' words match a neighbour page.
    for name in ("main", "narrow"):
        assert results[name]["page_hit@1"] == 0.0 and results[name]["page_hit@3"] == 1.0
    # /ask uses each variant's own top_k: narrow answers from one (wrong) page only.
    assert results["main"]["source_retrieved"] == 1.0
    assert results["narrow"]["source_retrieved"] == 0.0
    assert unknown == 2 and "unknown variant 'nope'" in capsys.readouterr().err
