"""A loopback static HTTP server and the Ray docs mirror unpacker, for tests and benchmarks."""

from __future__ import annotations

import functools
import hashlib
import http.server
import tarfile
import threading
from pathlib import Path
from types import TracebackType
from typing import ClassVar


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files plus a permanent-redirect table and, optionally, strong ETags answered
    with 304 on `If-None-Match` (Last-Modified and `If-Modified-Since` are the base class's).
    Every response status is logged per path, without access-log noise."""

    redirects: ClassVar[dict[str, str]] = {}
    etags: ClassVar[bool] = True
    served: ClassVar[list[tuple[str, int]]] = []
    _etag: str | None = None

    def do_GET(self) -> None:
        target = self.redirects.get(self.path)
        if target:
            self.send_response(301)
            self.send_header("Location", target)
            self.end_headers()
            return
        self._etag = self._file_etag()
        if self._etag and self._etag in self.headers.get("If-None-Match", ""):
            self.send_response(304)
            self.end_headers()
            return
        super().do_GET()

    def _file_etag(self) -> str | None:
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            path = path / "index.html"
        if not self.etags or not path.is_file():
            return None
        return '"' + hashlib.sha256(path.read_bytes()).hexdigest()[:16] + '"'

    def send_response(self, code: int, message: str | None = None) -> None:
        self.served.append((self.path, code))
        super().send_response(code, message)

    def end_headers(self) -> None:
        if self._etag:
            self.send_header("ETag", self._etag)
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class StaticSite:
    """Serve `root` on 127.0.0.1 (a free port) in a background thread; use as a context manager.
    `served` lists (path, status) of every response, for tests of conditional requests."""

    def __init__(
        self, root: Path, redirects: dict[str, str] | None = None, etags: bool = True
    ) -> None:
        self.served: list[tuple[str, int]] = []
        attrs = {"redirects": dict(redirects or {}), "etags": etags, "served": self.served}
        self.handler = type("Handler", (_Handler,), attrs)  # set `etags` on it to switch
        handler = functools.partial(self.handler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StaticSite:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.shutdown()
        self.server.server_close()


def unpack_ray_docs(archive: Path, out: Path) -> Path:
    """Unpack the docs.ray.io mirror and merge its supplement; returns the site root whose
    URL paths read /en/master/... Reuses an earlier unpack in `out`."""
    site = out / "ray-docs-html" / "docs.ray.io"
    marker = out / ".unpacked"
    if marker.exists():
        return site
    with tarfile.open(archive) as tar:
        tar.extractall(out, filter="data")
    supplement = out / "ray-docs-html-supplement" / "docs.ray.io"
    for path in supplement.rglob("*"):
        dest = site / path.relative_to(supplement)
        if path.is_file() and not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(path.read_bytes())
    marker.touch()
    return site


def ray_docs_seeds(base_url: str, out: Path) -> list[str]:
    """Crawl seeds for the mirror unpacked in `out` and served at `base_url`: the index page,
    plus the supplement pages, which no page links to."""
    supplement = out / "ray-docs-html-supplement" / "docs.ray.io"
    return [f"{base_url}/en/master/index.html"] + [
        f"{base_url}/{p.relative_to(supplement).as_posix()}"
        for p in sorted(supplement.rglob("*.html"))
    ]
