"""Ask the running service a question (or just search) and print the answer with sources.

python test_client.py "How do I scale a deployment?"
python test_client.py --stream "What is a DeploymentHandle?"
python test_client.py --search-only --k 3 "autoscaling"

With auth on (the shipped serve_config.yaml), pass a key from `python manage_keys.py create`:
--api-key KEY, or the RAG_API_KEY environment variable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import httpx


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="service base URL")
    parser.add_argument("--k", type=int, default=5, help="chunks to retrieve")
    parser.add_argument("--stream", action="store_true", help="stream the answer as it is made")
    parser.add_argument("--search-only", action="store_true", help="plain search, no answer")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per request")
    parser.add_argument("--api-key", default=os.environ.get("RAG_API_KEY"),
                        help="API key (default: $RAG_API_KEY)")  # fmt: skip
    parser.add_argument("--collection", default=None, help="collection to read (default: the "
                        "key's first)")  # fmt: skip
    return parser.parse_args(argv)


class ServiceError(Exception):
    """The service is down or answered an error; the message is one readable line."""


def _check(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text
        hint = ""
        if response.status_code == 401:
            hint = " (pass --api-key or set RAG_API_KEY; create one with manage_keys.py)"
        raise ServiceError(f"HTTP {response.status_code}: {str(message)[:300]}{hint}")
    result: dict[str, Any] = response.json()
    return result


def print_sources(sources: list[dict[str, Any]], key: str = "content") -> None:
    """Numbered sources, as the answer cites them."""
    for number, hit in enumerate(sources, start=1):
        snippet = " ".join(str(hit.get(key, "")).split())[:160]
        print(f"  [{number}] {hit['source']}  (score {hit['score']:.4f})\n      {snippet}")


def search(client: httpx.Client, args: argparse.Namespace) -> None:
    params: dict[str, Any] = {"query": args.question, "k": args.k}
    if args.collection:
        params["collection"] = args.collection
    data = _check(client.get("/search", params=params))
    print(f"search: {len(data['results'])} results")
    print_sources(data["results"])


def print_answer_footer(data: dict[str, Any]) -> None:
    """How the answer was made, then the sources it cites, numbered as in the text."""
    usage = data["tokens_used"]
    print(f"\n({data.get('answer_mode', 'generated')}, prompt {data.get('prompt_version', '?')}, "
          f"{data['latency_ms']:.0f} ms, {usage['total']} tokens)")  # fmt: skip
    if data.get("message"):
        print(f"note: {data['message']}")
    citations = data.get("citations") or []
    print("sources cited:" if citations else "sources retrieved (none cited):")
    for cite in citations:
        where = " > ".join(p for p in (cite["title"], cite["section"]) if p)
        print(f"  [{cite['number']}] {where}\n      {cite['url']}")
    if not citations:
        print_sources(data["sources"])


def ask_body(args: argparse.Namespace) -> dict[str, Any]:
    """The /ask body the flags describe."""
    body: dict[str, Any] = {"question": args.question, "top_k": args.k}
    if args.collection:
        body["collection"] = args.collection
    return body


def ask(client: httpx.Client, args: argparse.Namespace) -> None:
    data = _check(client.post("/ask", json=ask_body(args)))
    print("answer:")
    print(data["answer"] or data.get("message", ""))
    print_answer_footer(data)


def ask_stream(client: httpx.Client, args: argparse.Namespace) -> None:
    with client.stream("POST", "/ask/stream", json=ask_body(args)) as response:
        if response.status_code >= 400:
            response.read()
            _check(response)
        event = ""
        print("answer: ", end="", flush=True)
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data = json.loads(line[5:])
                if event == "token":
                    print(data["text"], end="", flush=True)
                elif event == "done":
                    if data.get("answer_mode") != "generated":  # it replaces the stream
                        print(f"\n{data['answer']}", end="")
                    print_answer_footer(data)


def main(argv: list[str] | None = None) -> int:
    """Run the requests; exit 1 with one line when the service is down or errs."""
    args = parse_args(argv)
    try:
        headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
        with httpx.Client(base_url=args.url, timeout=args.timeout, headers=headers) as client:
            if args.search_only:
                search(client, args)
            else:
                (ask_stream if args.stream else ask)(client, args)
    except httpx.ConnectError:
        print(f"error: the service is not reachable at {args.url} (is serve_index.py running?)",
              file=sys.stderr)  # fmt: skip
        return 1
    except (httpx.HTTPError, ServiceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
