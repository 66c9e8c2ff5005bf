"""Incremental refresh: conditional fetches, page classification, the content fingerprint, and
`--refresh` end to end against a real HTTP server with a real Ray, embedder and FAISS."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from build_index import parse_args, settings_from_args
from pipelines.build import run_build
from pipelines.chunk import SectionChunker
from pipelines.crawl import fetch_one
from pipelines.refresh import Revalidation, content_fingerprint
from ragcore.documents import Page, Section
from ragcore.index_format import current_version, load_index, read_manifest, read_pages
from ragcore.index_manager import IndexManager
from tests.helpers import html_page
from utils.settings import BuildSettings, ChunkingSettings, CrawlSettings, ServiceSettings
from utils.static_site import StaticSite


def _page(url: str, text: str, content_hash: str = "h1", **validators: str) -> Page:
    section = Section(url, "Title", "intro", "Intro", text)
    return Page(url, "Title", [section], ["x"], content_hash=content_hash, **validators)


def _touch_later(path: Path, seconds: float = 10.0) -> None:
    """Move a file's mtime forward: Last-Modified has a one-second grain, and an edit within
    the second of the last fetch would otherwise look unmodified."""
    stat = path.stat()
    os.utime(path, (stat.st_atime + seconds, stat.st_mtime + seconds))


def test_page_records_round_trip() -> None:
    page = _page("https://d/x", "text", etag='"e"', last_modified="Mon, 01 Jan 2024 00:00:00 GMT")
    assert Page.from_dict(page.to_dict()) == page


def test_validators_and_reuse_of_stored_pages() -> None:
    stored = _page(
        "https://d/a", "alpha", etag='"e1"', last_modified="Tue, 02 Jan 2024 00:00:00 GMT"
    )
    check = Revalidation("v1", "fp", {stored.url: stored})
    assert check.validators(stored.url) == {
        "If-None-Match": '"e1"', "If-Modified-Since": "Tue, 02 Jan 2024 00:00:00 GMT"}  # fmt: skip
    assert check.validators("https://d/new") == {}
    assert check.reuse(stored.url, 304) is stored
    assert check.reuse(stored.url, 503) is stored and check.reuse(stored.url, None) is stored
    assert check.reuse(stored.url, 404) is None and check.reuse(stored.url, 200) is None
    assert check.reuse("https://d/new", 304) is None
    assert check.not_modified == {stored.url} and check.kept == {stored.url}


def test_changes_classify_by_304_hash_and_presence() -> None:
    before = [_page(f"https://d/{n}", n, content_hash=n) for n in ("same", "edit", "gone", "flaky")]
    check = Revalidation("v1", "fp", {p.url: p for p in before})
    check.reuse("https://d/flaky", 502)
    now = [
        _page("https://d/same", "same", content_hash="same"),  # full fetch, same bytes
        _page("https://d/edit", "edited", content_hash="edited"),
        _page("https://d/flaky", "flaky", content_hash="flaky"),
        _page("https://d/added", "added", content_hash="added"),
    ]
    changes = check.changes(now)
    assert changes.counts() == {"unchanged": 1, "changed": 1, "new": 1, "removed": 1, "kept": 1}
    assert changes.removed == ["https://d/gone"] and changes.any
    assert "pages unchanged 1, changed 1, new 1, removed 1" in changes.line()
    assert "previous copy kept: 1" in changes.line()


def test_content_fingerprint_follows_text_titles_and_settings() -> None:
    settings = BuildSettings(sources=["x"])
    chunker = SectionChunker(settings.chunking)
    pages = [_page("https://d/a", "alpha text"), _page("https://d/b", "beta text")]
    base = content_fingerprint(chunker.chunk_pages(pages), settings)
    assert content_fingerprint(chunker.chunk_pages(pages[::-1]), settings) == base
    edited = [pages[0], _page("https://d/b", "beta text, edited")]
    assert content_fingerprint(chunker.chunk_pages(edited), settings) != base
    renamed = Page("https://d/b", "Renamed", [Section("https://d/b", "Renamed", "intro",
                                                      "Intro", "beta text")])  # fmt: skip
    assert content_fingerprint(chunker.chunk_pages([pages[0], renamed]), settings) != base
    other = settings.model_copy(update={"index": settings.index.model_copy(
        update={"index_type": "hnsw"})})  # fmt: skip
    assert content_fingerprint(chunker.chunk_pages(pages), other) != base


def test_refresh_flag_reaches_the_settings() -> None:
    assert settings_from_args(parse_args(["--refresh"])).build.refresh is True
    assert settings_from_args(parse_args([])).build.refresh is False


@pytest.mark.parametrize("etags", [True, False], ids=["etag", "last-modified"])
def test_fetch_one_asks_conditionally(tmp_path: Path, etags: bool) -> None:
    (tmp_path / "a.html").write_text(html_page("A", "alpha"))
    settings = CrawlSettings(retries=0)
    with StaticSite(tmp_path, etags=etags) as site, httpx.Client() as client:
        url = f"{site.url}/a.html"
        first = fetch_one(client, url, settings)
        assert first.page is not None and first.status == 200
        assert (first.page.etag is not None) is etags and first.page.last_modified
        check = Revalidation("v1", None, {url: first.page})
        again = fetch_one(client, url, settings, check.validators(url))
        assert again.page is None and again.status == 304
        (tmp_path / "a.html").write_text(html_page("A", "alpha, edited"))
        _touch_later(tmp_path / "a.html")
        edited = fetch_one(client, url, settings, check.validators(url))
    assert edited.status == 200 and edited.page is not None
    assert edited.page.content_hash != first.page.content_hash


@pytest.fixture
def docs_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(
        html_page("Home", "Start here.", ("a.html", "b.html", "c.html"))
    )
    bodies = {"a": "Autoscaling adds replicas under load.", "b": "Batching groups requests.",
              "c": "Checkpoints save actor state."}  # fmt: skip
    for name, body in bodies.items():
        (site / f"{name}.html").write_text(html_page(name.upper(), body * 20))
    return site


@pytest.mark.integration
def test_refresh_republishes_only_what_changed_and_the_service_swaps(
    docs_site: Path, tmp_path: Path, ray_session: int
) -> None:
    index_dir = tmp_path / "index"
    with StaticSite(docs_site) as server:
        settings = BuildSettings(sources=[f"{server.url}/index.html"], index_dir=index_dir,
                                 chunking=ChunkingSettings(chunk_size=300, chunk_overlap=0),
                                 crawl=CrawlSettings(retries=0))  # fmt: skip
        run_build(settings)
        first = current_version(index_dir)
        assert first and {p.url for p in read_pages(index_dir, first) or []} == {
            f"{server.url}/", *(f"{server.url}/{n}.html" for n in "abc")}  # fmt: skip
        manager = IndexManager(ServiceSettings(index_dir=index_dir))
        assert manager.refresh() and manager.require_live().version == first
        old_ids = {c.id for c in load_index(index_dir).chunks}

        (docs_site / "b.html").write_text(
            html_page("B", "Batching groups requests into one call. " * 20)
        )
        (docs_site / "c.html").unlink()  # still linked: a 404 now
        (docs_site / "d.html").write_text(html_page("D", "Deployments declare replicas. " * 20))
        (docs_site / "index.html").write_text(
            html_page("Home", "Start here.", ("a.html", "b.html", "c.html", "d.html"))
        )
        for name in ("b.html", "d.html", "index.html"):
            _touch_later(docs_site / name)
        server.served.clear()
        refreshed = run_build(settings.model_copy(update={"refresh": True}))

        assert refreshed.published and refreshed.changes is not None
        assert refreshed.changes.counts() == {"unchanged": 1, "changed": 2, "new": 1,
                                              "removed": 1, "kept": 0}  # fmt: skip
        assert refreshed.changes.unchanged == [f"{server.url}/a.html"]
        assert ("/a.html", 304) in server.served and ("/c.html", 404) in server.served
        version = load_index(index_dir)
        assert version.version != first and version.manifest["refresh"]["from"] == first
        new_ids = {c.id for c in version.chunks}
        assert refreshed.embed.embedded_chunks == len(new_ids - old_ids) > 0
        assert refreshed.embed.reused_chunks == len(new_ids & old_ids) > 0
        urls = {c.page_url for c in version.chunks}
        assert f"{server.url}/c.html" not in urls and f"{server.url}/d.html" in urls
        assert "into one call" in " ".join(c.text for c in version.chunks)
        assert manager.refresh() and manager.require_live().version == version.version
        fingerprint = read_manifest(index_dir, version.version)["content_fingerprint"]

        # The server drops its ETags: every page comes back in full, hashes the same as
        # stored, and nothing is published.
        server.handler.etags = False
        server.served.clear()
        same = run_build(settings.model_copy(update={"refresh": True}))
    pages = {path: status for path, status in server.served if path.endswith(("/", ".html"))}
    assert pages == {"/": 200, "/a.html": 200, "/b.html": 200, "/c.html": 404, "/d.html": 200}
    assert same.changes is not None and same.changes.counts()["unchanged"] == 4
    assert not same.published and same.version_path.name == version.version
    assert "nothing changed: CURRENT stays on" in "\n".join(same.lines())
    assert current_version(index_dir) == version.version and not manager.refresh()
    assert read_manifest(index_dir, version.version)["content_fingerprint"] == fingerprint
