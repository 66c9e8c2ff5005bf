"""The answer policy: decoding layers and limits, refusal, validation and fallback."""

from __future__ import annotations

import pytest

from ragcore.answering import AnswerPolicy, AskOptions
from ragcore.prompts import TemplateStore
from ragcore.protocols import Hit
from utils.answer_settings import AnswerSettings
from utils.errors import RequestRejectedError
from utils.paths import PROMPTS_DIR
from utils.settings import GeneratorSettings

DOC = ("Ray Serve autoscaling adjusts the number of replicas based on ongoing requests. "
       "Set max_ongoing_requests in the deployment decorator to bound the queue.")  # fmt: skip
HITS = [Hit(DOC, "https://docs.ray.io/en/master/serve/autoscaling.html#a", 0.5,
            "Autoscaling > Config", relevance=0.62)]  # fmt: skip


V2 = TemplateStore(PROMPTS_DIR).get("answer-v2")


def policy(**settings: object) -> AnswerPolicy:
    return AnswerPolicy(AnswerSettings.model_validate(settings), GeneratorSettings())


def test_decoding_layers_settings_then_template_then_request() -> None:
    p = policy(decoding={"repetition_penalty": 1.05, "stop": ["\n\n\n"]})
    v1, v2 = p.template("answer-v1"), p.template("answer-v2")
    assert p.decoding(v1, AskOptions()).repetition_penalty == 1.05  # v1 sets nothing
    from_v2 = p.decoding(v2, AskOptions())
    assert from_v2.repetition_penalty == 1.05  # v2 leaves it to the settings
    assert from_v2.frequency_penalty == v2.decoding["frequency_penalty"] > 0
    assert from_v2.stop == ("\n\n\n",) and from_v2.max_tokens == 256
    asked = p.decoding(v2, AskOptions(max_tokens=64, repetition_penalty=1.3))
    assert asked.repetition_penalty == 1.3 and asked.max_tokens == 64


def test_request_past_the_server_limit_is_rejected_with_the_limit() -> None:
    p = policy(limits={"max_repetition_penalty": 1.2})
    with pytest.raises(RequestRejectedError, match=r"limit 1\.2"):
        p.decoding(p.template(None), AskOptions(repetition_penalty=1.5))


def test_refuses_only_when_nothing_retrieved_is_relevant() -> None:
    p = policy(min_relevance=0.45)
    assert p.relevant(HITS) and not p.relevant([Hit("x", "u", 1.0, relevance=0.3)])
    assert not p.relevant([]) and p.refusal().mode == "refused"


def test_good_answer_is_kept_with_grounded_citations() -> None:
    raw = "Autoscaling adjusts the number of replicas based on ongoing requests [4]."
    done = policy().finish("How does autoscaling work?", raw, HITS, "stop", V2)
    assert done.mode == "generated" and done.text.endswith("requests [1].")
    assert done.citations == (1,) and done.validation and done.validation.invalid_citations == 1


def test_an_ungrounded_loop_falls_back_to_an_extractive_answer_with_the_reasons() -> None:
    raw = "It is a class that is used to create a deployment. " * 5
    done = policy().finish("What is autoscaling?", raw, HITS, "length", V2)
    assert done.mode == "extractive" and done.citations == (1,)
    assert done.validation and not done.validation.passed
    assert done.reason == "groundedness" and "failed validation" in done.message
    assert done.stop_reason == "repetition"
    assert "[1]" in done.text and "class that is used" not in done.text


def test_a_good_start_before_a_loop_is_kept_and_the_loop_cut() -> None:
    good = "Autoscaling adjusts the number of replicas based on ongoing requests [1]. "
    raw = good + "Set max_ongoing_requests in the decorator. " * 4
    done = policy().finish("How does autoscaling work?", raw, HITS, "length", V2)
    assert done.mode == "generated" and done.stop_reason == "repetition"
    assert done.text.count("max_ongoing_requests") == 1 and done.validation
    assert done.validation.passed and done.validation.max_ngram_count == 1


def test_validation_off_returns_the_model_text_as_is() -> None:
    raw = "It loops. " * 10 + "https://example.com/x"
    done = policy(validation={"enabled": False}).finish("q", raw, HITS, "stop", V2)
    assert done.mode == "generated" and done.text == raw.strip()
