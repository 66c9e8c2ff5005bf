"""The extractive fallback quotes real sentences with their numbers, without Ray."""

from __future__ import annotations

from ragcore.extractive import EXTRACTIVE_LEAD, extractive_answer
from ragcore.protocols import Hit

HITS = [
    Hit("import ray\nray.init()\nThis page is about clusters in general and their nodes.",
        "u1", 0.5),
    Hit("Set num_replicas in the deployment options to choose how many replicas run. "
        "Replicas share the load of a deployment evenly. See also the API reference.", "u2", 0.4),
]  # fmt: skip


def test_quotes_the_sentences_that_answer_with_their_numbers() -> None:
    text, cited = extractive_answer("How do I set the number of replicas?", HITS, 2)
    lines = text.splitlines()
    assert lines[0] == EXTRACTIVE_LEAD and cited == (2,)
    assert lines[1] == ("- Set num_replicas in the deployment options to choose how many "
                        "replicas run. [2]")  # fmt: skip
    assert all("import ray" not in line for line in lines)
    assert all(line.split("[")[0].strip("- ").strip() in HITS[1].content + HITS[0].content
               for line in lines[1:])  # fmt: skip


def test_near_identical_lines_are_quoted_once() -> None:
    listing = Hit("Run conda install ray-tune to install Ray plus dependencies for Ray Tune. "
                  "Run conda install ray-rllib to install Ray plus dependencies for Ray RLlib. "
                  "Run conda install ray-air to install Ray plus dependencies for Ray AIR.",
                  "u", 1.0)  # fmt: skip
    text, _ = extractive_answer("How do I install Ray with conda?", [listing], 3)
    assert text.count("plus dependencies for Ray") == 1


def test_wrapped_sentences_are_quoted_whole_and_commands_are_not() -> None:
    wrapped = Hit("python serve_index.py --index-dir index  # local Ray, port 8000\n"
                  "If the generator fails or times out, `/ask` degrades: it returns HTTP 200\n"
                  "with the retrieved sources and an extractive answer.\n- a list item here",
                  "u", 1.0)  # fmt: skip
    text, _ = extractive_answer("What happens to /ask when the generator fails?", [wrapped], 3)
    assert "HTTP 200 with the retrieved sources and an extractive answer. [1]" in text
    assert "serve_index.py" not in text


def test_nothing_quotable_falls_back_to_the_top_source() -> None:
    text, cited = extractive_answer("anything", [Hit("x = 1", "u", 1.0)], 3)
    assert cited == (1,) and "x = 1" in text
