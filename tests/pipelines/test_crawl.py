"""The crawler against real HTTP servers on loopback, run as real Ray tasks."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.crawl import crawl
from tests.helpers import html_page
from utils.errors import InputError
from utils.settings import CrawlSettings
from utils.static_site import StaticSite

pytestmark = pytest.mark.integration


@pytest.fixture
def site(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    (docs / "guide").mkdir(parents=True)
    (docs / "private").mkdir()
    (docs / "_modules" / "ray").mkdir(parents=True)
    (docs / "_modules" / "ray" / "serve.html").write_text(html_page("Source", "def f(): ...", []))
    pages = {
        "index.html": html_page(
            "Home",
            "welcome",
            [
                "guide/a.html",
                "guide/a.html#frag",
                "old.html",
                "private/secret.html",
                "data.json",
                "/other/x.html",
                "guide/missing.html",
                "notes.html",
            ],
        ),
        "guide/a.html": html_page("A", "alpha text", ["b.html", "../index.html"]),
        "guide/b.html": html_page("B", "beta text", ["c.html"]),
        "guide/c.html": html_page("C", "gamma text", []),
        "private/secret.html": html_page("Secret", "hidden", []),
        "new.html": html_page("New", "moved here", []),
    }
    for name, html in pages.items():
        (docs / name).write_text(html)
    (docs / "data.json").write_text('{"not": "html"}')
    (docs / "notes.html.txt").write_text("x")
    (tmp_path / "robots.txt").write_text("User-agent: *\nDisallow: /docs/private/\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.html").write_text(html_page("Out", "out of scope", []))
    return tmp_path


def test_crawl_follows_scope_robots_redirects_and_depth(site: Path, ray_session: int) -> None:
    with StaticSite(site, redirects={"/docs/old.html": "/docs/new.html"}) as server:
        pages = crawl([f"{server.url}/docs/index.html"], CrawlSettings(max_depth=2, retries=0))
    paths = sorted(p.url.removeprefix(server.url) for p in pages)
    # c.html is 3 hops away; private/ is disallowed by robots.txt; /other is out of scope;
    # data.json is not HTML; _modules/ (Sphinx source listings) is excluded; old.html
    # redirects to new.html and is stored once, by final URL.
    assert paths == ["/docs/", "/docs/guide/a.html", "/docs/guide/b.html", "/docs/new.html"]
    texts = {p.url.removeprefix(server.url): p.sections[0].text for p in pages}
    assert texts["/docs/new.html"] == "moved here"


def test_crawl_stops_at_max_pages(site: Path, ray_session: int) -> None:
    with StaticSite(site) as server:
        pages = crawl([f"{server.url}/docs/index.html"], CrawlSettings(max_pages=2, retries=0))
    assert len(pages) == 2


def test_unreachable_seed_is_a_clear_error(ray_session: int) -> None:
    with pytest.raises(InputError, match=r"could not fetch http://127\.0\.0\.1:9/"):
        crawl(["http://127.0.0.1:9/docs/"], CrawlSettings(retries=1, backoff_s=0.01, timeout_s=2))


@pytest.mark.shared_data
def test_crawl_real_ray_serve_docs(ray_docs_site: Path, ray_session: int) -> None:
    with StaticSite(ray_docs_site) as server:
        pages = crawl(
            [f"{server.url}/en/master/serve/index.html"], CrawlSettings(max_depth=2, max_pages=40)
        )
    assert len(pages) == 40
    assert all(p.url.startswith(f"{server.url}/en/master/serve/") for p in pages)
    home = next(p for p in pages if p.url == f"{server.url}/en/master/serve/")
    assert home.title.startswith("Ray Serve")
    anchors = {s.anchor for p in pages for s in p.sections}
    assert len(anchors) > 40 and "" not in {s.text for p in pages for s in p.sections}
    text = "\n".join(s.text for p in pages for s in p.sections)
    assert "deployment" in text.lower()
    assert "<div" not in text and "Back to top" not in text
