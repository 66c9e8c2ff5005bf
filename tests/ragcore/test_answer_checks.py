"""Repetition detection, groundedness and answer validation, without Ray."""

from __future__ import annotations

from ragcore.answer_checks import (
    LoopDetector,
    cut_at_repeat,
    limit_sentences,
    max_ngram_count,
    trim_to_sentence,
    validate,
)
from ragcore.citations import ground_citations
from ragcore.grounding import sentences, supported_share
from utils.answer_settings import ValidationSettings

DOC = ("Ray Serve autoscaling adjusts the number of replicas based on ongoing requests. "
       "Set max_ongoing_requests in the deployment decorator to bound the queue.")  # fmt: skip
LOOP = "It is a class that is used to create a deployment. " * 4


def test_ngram_count_finds_a_loop_and_not_a_normal_answer() -> None:
    assert max_ngram_count(LOOP, 6) == 4
    assert max_ngram_count("Autoscaling adjusts the number of replicas [1].", 6) == 1


def test_loop_detector_fires_on_the_third_repeat_as_tokens_stream() -> None:
    detector = LoopDetector(6, 2)
    pieces = [LOOP[i : i + 7] for i in range(0, len(LOOP), 7)]
    fired_at = next(i for i, piece in enumerate(pieces) if detector.feed(piece))
    streamed = "".join(pieces[: fired_at + 1])
    assert 2 * len(LOOP) / 4 < len(streamed) <= 3 * len(LOOP) / 4 + 7
    assert not LoopDetector(6, 2).feed("Autoscaling adjusts replicas. " + DOC)


def test_groundedness_counts_supported_sentences() -> None:
    grounded = "Autoscaling adjusts the number of replicas based on ongoing requests [1]."
    invented = "Replicas are billed hourly by the cloud provider marketplace."
    assert sentences(f"{grounded} {invented} Yes.") == [grounded, invented]
    assert supported_share(grounded, [DOC]) == 1.0
    assert supported_share(f"{grounded} {invented}", [DOC]) == 0.5
    assert supported_share(invented, []) == 0.0


def test_cut_at_repeat_keeps_the_answer_before_the_loop() -> None:
    good = "Autoscaling adjusts replicas based on ongoing requests [1]."
    first = " It is a class that is used to create a deployment."
    assert cut_at_repeat(good + " " + LOOP, 6) == good + first
    looping_url = "See /autoscaling-autoscaling-autoscaling-autoscaling-autoscaling-x"
    assert cut_at_repeat(looping_url, 3) == ""
    assert cut_at_repeat(good, 6) == good


def test_limit_sentences_keeps_the_first_ones() -> None:
    text = "One is here. Two is here.\nThree is a line\nFour."
    assert limit_sentences(text, 2) == "One is here. Two is here."
    assert limit_sentences(text, 3) == "One is here. Two is here.\nThree is a line"
    assert limit_sentences(text, 9) == text


def test_trim_to_sentence_drops_the_cut_tail() -> None:
    assert trim_to_sentence("First sentence here. Second one is cut mid") == "First sentence here."
    assert trim_to_sentence("Only a fragment") == ""
    assert trim_to_sentence("Complete.") == "Complete."


def test_validate_passes_a_cited_grounded_answer_and_lists_each_failure() -> None:
    settings = ValidationSettings()
    good = "Autoscaling adjusts the number of replicas based on ongoing requests [1]."
    result = validate(ground_citations(good, [DOC], ["u"]), [DOC], settings)
    assert result.passed and result.groundedness == 1.0 and result.valid_citations == 1
    bad = "Replicas are billed hourly by the cloud provider marketplace. " * 3
    result = validate(ground_citations(bad, [DOC], ["u"]), [DOC], settings)
    codes = {r.split(":")[0] for r in result.reasons}
    assert not result.passed and codes == {"repetition", "groundedness", "citation"}
    short = ValidationSettings(max_chars=50)
    assert "length" in validate(ground_citations(good, [DOC], ["u"]), [DOC],
                                short).reasons[0]  # fmt: skip
