"""URL normalisation shared by the crawler and the evaluation harness."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def normalize_url(url: str) -> str:
    """Canonical form for de-duplication: lower-case scheme and host, no fragment, no default
    port, and `index.html` folded into its directory."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    path = parts.path or "/"
    if path.endswith("/index.html"):
        path = path[: -len("index.html")]
    return urlunsplit((scheme, host, path, parts.query, ""))


def page_key(url: str) -> str:
    """A page's identity for scoring: the URL path without scheme, host, query or anchor, so a
    local mirror at http://127.0.0.1:PORT/en/master/x.html matches https://docs.ray.io/en/master/x.html."""
    path = urlsplit(url.strip()).path or "/"
    if path.endswith("/index.html"):
        path = path[: -len("index.html")]
    return path.rstrip("/") or "/"


def section_key(url: str) -> str:
    """`page_key` plus the `#anchor`, when the URL has one."""
    fragment = urlsplit(url.strip()).fragment
    return f"{page_key(url)}#{fragment}" if fragment else page_key(url)


def in_scope(url: str, seed: str) -> bool:
    """True when `url` is on the seed's host and under its path prefix (its directory)."""
    u, s = urlsplit(url), urlsplit(seed)
    if u.scheme not in ("http", "https") or u.netloc.lower() != s.netloc.lower():
        return False
    prefix = s.path if s.path.endswith("/") else s.path.rsplit("/", 1)[0] + "/"
    return u.path.startswith(prefix) or u.path + "/" == prefix
