"""The answers mode against a fake service (httpx.MockTransport and a real loopback server)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import evaluate
from evaluation.answers import (
    answer_quality,
    ask_url,
    chat_url,
    evaluate_answers,
    is_refusal,
    load_questions,
)
from evaluation.retrieval import QAItem

SERVE_DOC = (
    "Ray Serve autoscaling adjusts the number of replicas based on ongoing requests. "
    "Set max_ongoing_requests in the deployment decorator to bound the queue."
)
SOURCE = "https://docs.ray.io/en/master/serve/autoscaling.html#config"


def _response(answer: str, status: str | None = None, latency: float = 20.0) -> dict[str, Any]:
    body: dict[str, Any] = {
        "answer": answer,
        "sources": [{"source": SOURCE, "content": SERVE_DOC, "score": 0.9}],
        "tokens_used": {"prompt": 100, "completion": 20, "total": 120},
        "latency_ms": latency,
        "request_id": "r1",
    }
    if status:
        body["status"] = status
    return body


def test_answer_quality_scores_one_answer() -> None:
    sources = [{"source": SOURCE, "content": SERVE_DOC}]
    good = answer_quality("Autoscaling adjusts the number of replicas [1].", sources, 20, 256)
    assert good == {"loop_rate": 0.0, "cut_at_max_tokens_rate": 0.0, "valid_citation_share": 1.0,
                    "groundedness": 1.0, "invented_url_rate": 0.0, "answer_words": 7.0,
                    "citation_validity": 1.0}  # fmt: skip
    looped = answer_quality("It is a class used to create it. " * 3 + "[2]", sources, 90, 256)
    assert looped["loop_rate"] == 1.0 and looped["citation_validity"] == 0.0
    assert looped["valid_citation_share"] == 0.0
    assert answer_quality("Fine [1].", sources, 256, 256)["loop_rate"] == 1.0  # cut at the cap
    local = "See http://127.0.0.1:9/en/master/serve/autoscaling.html."
    assert answer_quality(local, sources, 9, 256)["invented_url_rate"] == 0.0
    invented = "See https://docs.ray.io/en/master/serve/autoscaling-autoscaling.html"
    assert answer_quality(invented, sources, 9, 256)["invented_url_rate"] == 1.0
    assert "citation_validity" not in answer_quality("No citation.", sources, 9, 256)


def test_refusals() -> None:
    assert is_refusal({"answer": "I don't know based on the provided context."})
    assert is_refusal({"answer": "Sorry.", "status": "refused"})
    assert is_refusal({"answer": "Anything", "answer_mode": "refused"})
    assert not is_refusal({"answer": "Set max_ongoing_requests [1]."})


def test_urls() -> None:
    assert ask_url("http://h:8000/") == "http://h:8000/ask"
    assert ask_url("http://h:8000/ask") == "http://h:8000/ask"
    assert chat_url("http://j") == "http://j/v1/chat/completions"
    assert chat_url("http://j/v1") == "http://j/v1/chat/completions"


def _fake_service(request: httpx.Request) -> httpx.Response:
    """Answers with a citation for Serve questions, refuses others, 500s on 'crash'."""
    question = json.loads(request.content)["question"]
    if "crash" in question:
        return httpx.Response(500, json={"detail": "boom"})
    if "serve" in question:
        answer = (
            "Autoscaling adjusts the number of replicas based on ongoing requests [1]. "
            "It also reboots the cluster every night at midnight."
        )
        return httpx.Response(200, json=_response(answer, latency=10.0))
    return httpx.Response(200, json=_response("I cannot answer that.", "refused", latency=30.0))


def test_evaluate_answers_with_mock_transport() -> None:
    items = [
        QAItem("how does serve autoscale?", SOURCE),
        QAItem("what is the capital of France?", "", answerable=False),
        QAItem("how does serve batch?", "https://docs.ray.io/en/master/serve/batching.html"),
        QAItem("tell me about data", "https://docs.ray.io/en/master/data/x.html"),  # refused
        QAItem("crash please", SOURCE),
    ]
    report = evaluate_answers(items, "http://svc", transport=httpx.MockTransport(_fake_service))
    assert report["questions"] == 5
    assert report["errors"] == 1
    assert report["refusal_rate_unanswerable"] == 1.0
    assert report["false_refusal_rate"] == pytest.approx(1 / 3)
    assert report["valid_citation_share"] == 1.0 and report["citation_validity"] == 1.0
    assert report["groundedness"] == pytest.approx(0.5)  # second sentence is invented
    assert report["loop_rate"] == 0.0 and report["invented_url_rate"] == 0.0
    assert report["source_retrieved"] == pytest.approx(0.5)  # the batching page was not
    assert report["tokens_total"] == 120
    assert report["server_latency_p50_ms"] == 20.0
    assert "latency_p99_ms" in report
    assert "judge_faithfulness" not in report


def test_judge_scores_are_averaged_and_bad_replies_counted() -> None:
    replies = iter(['{"faithfulness": 0.5, "relevance": 1.0}', "no json here"])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/chat/completions":
            assert "Context:" in json.loads(request.content)["messages"][0]["content"]
            return httpx.Response(200, json={"choices": [{"message": {"content": next(replies)}}]})
        return _fake_service(request)

    items = [QAItem("serve one?", SOURCE), QAItem("serve two?", SOURCE)]
    report = evaluate_answers(
        items, "http://svc", judge_url="http://judge", transport=httpx.MockTransport(handler)
    )
    assert report["judge_faithfulness"] == 0.5
    assert report["judge_relevance"] == 1.0
    assert report["judge_failure_rate"] == 0.5


class _AskHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        question = json.loads(self.rfile.read(length))["question"]
        answered = "serve" in question
        body = _response(
            "Autoscaling adjusts replicas based on ongoing requests [1]."
            if answered
            else "That is not covered in the documentation, so I don't know."
        )
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def ask_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AskHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_cli_answers_against_loopback_server(
    ask_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"question": "serve autoscaling?", "source": SOURCE}) + "\n")
    extra = tmp_path / "unanswerable.jsonl"
    extra.write_text(json.dumps({"question": "who won the 1998 world cup?"}) + "\n")
    assert len(load_questions(qa, extra)) == 2
    code = evaluate.main(
        ["answers", "--qa", str(qa), "--unanswerable", str(extra), "--url", ask_server]
    )
    assert code == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    service = last["results"]["service"]
    assert service["valid_citation_share"] == 1.0
    assert service["groundedness"] == 1.0
    assert service["refusal_rate_unanswerable"] == 1.0
    assert service["errors"] == 0


def test_cli_reports_bad_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert evaluate.main(["answers", "--qa", str(empty), "--url", "http://127.0.0.1:9"]) == 2
    assert "holds no questions" in capsys.readouterr().err
