"""`make demo`: build an index of guide/ (the user guide), serve it, ask three questions, stop.

Each step is the real CLI a user would run: build_index.py, serve_index.py, test_client.py.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path

from deployments.launch import wait_ready

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
    print("== 1/3 build the index (Ray tasks crawl, chunk and embed guide/)", flush=True)
    subprocess.run([py, "build_index.py", "--index-dir", args.index_dir], cwd=ROOT, check=True)
    print("\n== 2/3 start the service (Ray Serve + vLLM; the first start takes a minute or two)",
          flush=True)  # fmt: skip
    server = subprocess.Popen(
        [py, "serve_index.py", "--index-dir", args.index_dir, "--port", str(args.port)], cwd=ROOT
    )
    url = f"http://127.0.0.1:{args.port}"
    try:
        wait_ready(url, 900, server)
        print("\n== 3/3 ask questions", flush=True)
        for question in QUESTIONS:
            print(f"\n>>> {question}", flush=True)
            subprocess.run([py, "test_client.py", "--url", url, "--k", "3", question],
                           cwd=ROOT, check=True)  # fmt: skip
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
    print("\ndemo finished: `make serve` keeps the service running.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
