"""Recursive HTTP crawler whose fetches and parsing run as Ray tasks.

The driver owns the frontier (scope, depth, de-duplication, robots.txt); the tasks fetch a small
batch of URLs each, with timeouts and retries, and hand back cleaned pages plus their links.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from dataclasses import dataclass
from urllib import robotparser
from urllib.parse import urlsplit

import httpx
import ray
from tqdm import tqdm

from pipelines.clean import html_to_sections
from pipelines.placement import SPREAD, Placement, this_node
from pipelines.refresh import Revalidation
from ragcore.documents import Page
from utils.errors import InputError
from utils.settings import CrawlSettings
from utils.urls import in_scope, normalize_url

_SKIP_SUFFIXES = (
    ".png",
    ".jpg",
    ".jpeg",
    ".gif",
    ".svg",
    ".ico",
    ".pdf",
    ".zip",
    ".gz",
    ".tgz",
    ".whl",
    ".css",
    ".js",
    ".json",
    ".xml",
    ".txt",
    ".ipynb",
    ".py",
    ".woff",
    ".woff2",
    ".ttf",
    ".mp4",
    ".webp",
    ".csv",
    ".yaml",
    ".yml",
)
_RETRY_STATUS = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class FetchResult:
    """What one URL fetch produced: a page, or a reason it produced none. `status` is the
    final HTTP status (None when no response came)."""

    requested: str
    page: Page | None
    error: str | None = None
    status: int | None = None


def _get_with_retries(
    client: httpx.Client, url: str, settings: CrawlSettings, headers: dict[str, str]
) -> httpx.Response:
    delay = settings.backoff_s
    for attempt in range(settings.retries + 1):
        try:
            response = client.get(url, headers=headers)
            if response.status_code not in _RETRY_STATUS or attempt == settings.retries:
                return response
        except httpx.HTTPError:
            if attempt == settings.retries:
                raise
        time.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")


def fetch_one(
    client: httpx.Client, url: str, settings: CrawlSettings, headers: dict[str, str] | None = None
) -> FetchResult:
    """Fetch and clean one URL, with optional conditional-request `headers` (a 304 comes back
    as a result with no page); never raises for network or HTTP errors."""
    try:
        response = _get_with_retries(client, url, settings, headers or {})
    except httpx.HTTPError as exc:
        return FetchResult(url, None, f"{type(exc).__name__}: {exc}")
    status = response.status_code
    if status != 200:
        return FetchResult(url, None, f"HTTP {status}", status)
    content_type = response.headers.get("content-type", "")
    if "html" not in content_type:
        return FetchResult(url, None, f"not HTML ({content_type or 'no content-type'})", status)
    final_url = normalize_url(str(response.url))
    title, sections, links = html_to_sections(response.text, final_url)
    page = Page(
        url=final_url,
        title=title,
        sections=sections,
        links=links,
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
        content_hash=hashlib.sha256(response.content).hexdigest(),
    )
    return FetchResult(url, page, status=status)


@ray.remote(num_cpus=0.25, max_retries=2, scheduling_strategy=SPREAD)
def fetch_batch(
    urls: list[str], settings: CrawlSettings, validators: dict[str, dict[str, str]]
) -> tuple[str, list[FetchResult]]:
    """Ray task: fetch a few URLs over one keep-alive connection pool, conditionally for those
    with `validators`; with its node."""
    headers = {"User-Agent": settings.user_agent, "Accept": "text/html,application/xhtml+xml"}
    with httpx.Client(timeout=settings.timeout_s, follow_redirects=True, headers=headers) as client:
        return this_node(), [fetch_one(client, u, settings, validators.get(u)) for u in urls]


class _Robots:
    """robots.txt per host, fetched once by the driver; unreachable robots.txt allows all."""

    def __init__(self, settings: CrawlSettings) -> None:
        self._settings = settings
        self._parsers: dict[str, robotparser.RobotFileParser | None] = {}

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._parsers:
            self._parsers[origin] = self._load(origin)
        parser = self._parsers[origin]
        return parser is None or parser.can_fetch(self._settings.user_agent, url)

    def _load(self, origin: str) -> robotparser.RobotFileParser | None:
        try:
            response = httpx.get(f"{origin}/robots.txt", timeout=self._settings.timeout_s)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        parser = robotparser.RobotFileParser()
        parser.parse(response.text.splitlines())
        return parser


def check_reachable(url: str, settings: CrawlSettings) -> None:
    """Raise InputError unless the seed URL answers (any status below 500) over HTTP."""
    try:
        response = httpx.get(
            url,
            timeout=settings.timeout_s,
            follow_redirects=True,
            headers={"User-Agent": settings.user_agent},
        )
    except httpx.HTTPError as exc:
        raise InputError(f"could not fetch {url}: {type(exc).__name__}: {exc}") from exc
    if response.status_code >= 400:
        raise InputError(f"could not fetch {url}: HTTP {response.status_code}")


def _crawlable(url: str, exclude_paths: tuple[str, ...] = ()) -> bool:
    path = urlsplit(url).path
    return not path.lower().endswith(_SKIP_SUFFIXES) and not any(x in path for x in exclude_paths)


def crawl(
    seeds: list[str],
    settings: CrawlSettings,
    timeout_s: float = 3600.0,
    placement: Placement | None = None,
    revalidation: Revalidation | None = None,
) -> list[Page]:
    """Breadth-first crawl of every seed within its host and path prefix (the fetch tasks are
    counted in `placement`). With `revalidation`, pages fetched before are requested
    conditionally and reused when the server says they have not changed.

    Raises InputError when a seed cannot be fetched at all, so a typo'd URL fails loudly.
    """
    revalidation = revalidation or Revalidation()
    robots = _Robots(settings)
    seen: set[str] = set()
    frontier: deque[tuple[str, int, str]] = deque()
    for seed in seeds:
        url = normalize_url(seed)
        if url not in seen:
            seen.add(url)
            frontier.append((url, 0, url))
    pages: dict[str, Page] = {}
    seed_errors: dict[str, str] = {}
    in_flight: dict[ray.ObjectRef, list[tuple[str, int, str]]] = {}
    deadline = time.monotonic() + timeout_s
    scheduled = 0
    bar = tqdm(total=settings.max_pages, desc="crawl", unit="page", dynamic_ncols=True)
    while frontier or in_flight:
        # Level-synchronous BFS: a depth is scheduled only once the previous one is finished,
        # so every page is reached at its shortest depth and max_depth means what it says.
        level = frontier[0][1] if frontier and not in_flight else None
        if in_flight:
            level = next(iter(in_flight.values()))[0][1]
        while (
            frontier
            and frontier[0][1] == level
            and len(in_flight) < settings.concurrency
            and scheduled < settings.max_pages
        ):
            batch: list[tuple[str, int, str]] = []
            while (
                frontier
                and frontier[0][1] == level
                and len(batch) < settings.urls_per_task
                and scheduled < settings.max_pages
            ):
                item = frontier.popleft()
                if robots.allowed(item[0]):
                    batch.append(item)
                    scheduled += 1
            if batch:
                urls = [u for u, _, _ in batch]
                checks = {u: h for u in urls if (h := revalidation.validators(u))}
                in_flight[fetch_batch.remote(urls, settings, checks)] = batch
        if not in_flight:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise InputError(f"crawl did not finish within {timeout_s:.0f}s")
        ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=min(remaining, 60.0))
        for ref in ready:
            batch = in_flight.pop(ref)
            node, results = ray.get(ref, timeout=60.0)
            if placement is not None:
                placement.add("crawl", node)
            for (url, depth, seed), result in zip(batch, results, strict=True):
                page = result.page or revalidation.reuse(url, result.status)
                if page is None:
                    if depth == 0:
                        seed_errors[seed] = result.error or "unknown error"
                    continue
                if page.url in pages or (depth > 0 and not in_scope(page.url, seed)):
                    continue
                seen.add(page.url)
                pages[page.url] = page
                bar.update(1)
                if depth >= settings.max_depth:
                    continue
                for link in page.links:
                    if (
                        link not in seen
                        and in_scope(link, seed)
                        and _crawlable(link, settings.exclude_paths)
                    ):
                        seen.add(link)
                        frontier.append((link, depth + 1, seed))
    bar.close()
    if seed_errors:
        seed, reason = next(iter(seed_errors.items()))
        raise InputError(f"could not fetch {seed}: {reason}")
    return sorted(pages.values(), key=lambda p: p.url)
