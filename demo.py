"""`make demo`: build an index of guide/ (the user guide), create a demo tenant's API key, serve
the index, ask three questions with the key, stop.

Each step is the real CLI a user would run: build_index.py, serve_index.py, test_client.py.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from deployments.launch import create_key, serve_index_process

ROOT = Path(__file__).resolve().parent
QUESTIONS = [
    "How do I build the index from a documentation site?",
    "How does the service stay up while a new index version is loaded?",
    "What happens to /ask when the generator fails?",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", default="index")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    py = sys.executable
    print("== 1/4 build the index (Ray tasks crawl, chunk and embed guide/)", flush=True)
    subprocess.run([py, "build_index.py", "--index-dir", args.index_dir], cwd=ROOT, check=True)
    print("\n== 2/4 create a demo tenant's API key (python manage_keys.py create --tenant demo)",
          flush=True)  # fmt: skip
    key = create_key("demo", ["--name", "make demo"])
    print("key created; test_client.py gets it as RAG_API_KEY (or pass --api-key)")
    print("\n== 3/4 start the service (Ray Serve + vLLM; the first start takes a minute or two)",
          flush=True)  # fmt: skip
    with serve_index_process(args.index_dir, args.port, stop_timeout_s=120) as url:
        print("\n== 4/4 ask questions", flush=True)
        env = {**os.environ, "RAG_API_KEY": key}
        for question in QUESTIONS:
            print(f"\n>>> {question}", flush=True)
            subprocess.run([py, "test_client.py", "--url", url, "--k", "3", question],
                           cwd=ROOT, check=True, env=env)  # fmt: skip
    print("\ndemo finished: `make serve` keeps the service running.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
