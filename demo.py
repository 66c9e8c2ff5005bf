"""`make demo`: build an index of docs/, serve it, ask three questions, stop.

Each step is the real CLI a user would run: build_index.py, serve_index.py, test_client.py.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent
QUESTIONS = [
    "How do I build the index from a documentation site?",
    "How does the service stay up while a new index version is loaded?",
    "What happens to /ask when the generator fails?",
]


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Poll /readyz until 200; fail early if the server process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve_index.py exited with code {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise TimeoutError(f"service not ready after {timeout_s:.0f}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", default="index")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    py = sys.executable
    print("== 1/3 build the index (Ray tasks crawl, chunk and embed docs/)", flush=True)
    subprocess.run([py, "build_index.py", "--index-dir", args.index_dir], cwd=ROOT, check=True)
    print("\n== 2/3 start the service (Ray Serve + vLLM; the first start takes a minute or two)",
          flush=True)  # fmt: skip
    server = subprocess.Popen(
        [py, "serve_index.py", "--index-dir", args.index_dir, "--port", str(args.port)], cwd=ROOT
    )
    url = f"http://127.0.0.1:{args.port}"
    try:
        wait_ready(url, server, timeout_s=900)
        print("\n== 3/3 ask questions", flush=True)
        for question in QUESTIONS:
            print(f"\n>>> {question}", flush=True)
            subprocess.run([py, "test_client.py", "--url", url, "--k", "3", question],
                           cwd=ROOT, check=True)  # fmt: skip
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
    print("\ndemo finished: `make serve` keeps the service running.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
