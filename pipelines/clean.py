"""Turn HTML, Markdown, reStructuredText and plain text into titled sections of clean text.

Raw markup never leaves this module: the chunker only sees `Section.text`.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin

from bs4 import BeautifulSoup, NavigableString, Tag

from ragcore.documents import Section
from utils.urls import normalize_url

# Chrome that carries no documentation content on any site we have seen.
_DROP_TAGS = (
    "script",
    "style",
    "noscript",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "svg",
    "button",
    "iframe",
    "template",
    "link",
    "meta",
)
# Classes, roles and ids of chrome, matched in one tree pass (CSS selectors were the bulk of
# parse time on Sphinx pages whose sidebars hold the entire site tree).
_DROP_CLASSES = frozenset(
    {
        "headerlink", "sidebar", "bd-sidebar", "bd-sidebar-primary", "bd-sidebar-secondary",
        "sphinxsidebar", "related", "breadcrumb", "breadcrumbs", "toc", "bd-toc",
        "prev-next-area", "footer", "header", "navbar", "skip-link", "copybtn",
        "cookie-banner", "announcement",
    }
)  # fmt: skip
_DROP_ROLES = frozenset({"navigation", "banner", "contentinfo", "search"})
_DROP_IDS = frozenset({"searchbox"})
_BLOCK_TAGS = (
    "p",
    "div",
    "li",
    "pre",
    "tr",
    "br",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "section",
    "dd",
    "dt",
    "table",
    "ul",
    "ol",
    "blockquote",
    "figure",
    "hr",
)
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_MARK = "\x00SECTION{}\x00"
_MARK_RE = re.compile(r"\x00SECTION(\d+)\x00")


def slugify(title: str) -> str:
    """An anchor for a heading, the way docutils and GitHub make them."""
    slug = re.sub(r"[^\w\s-]", "", title.lower(), flags=re.UNICODE)
    return re.sub(r"[\s_]+", "-", slug).strip("-")


def _tidy(text: str) -> str:
    lines = [re.sub(r"[ \t\u00a0]+", " ", line).rstrip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line.strip() or (out and out[-1].strip()):
            out.append(line)
    return "\n".join(out).strip()


def _heading_anchor(heading: Tag) -> str:
    if heading.get("id"):
        return str(heading["id"])
    link = heading.find("a", href=re.compile(r"^#"))
    if isinstance(link, Tag):
        return str(link["href"])[1:]
    parent = heading.parent
    if isinstance(parent, Tag) and parent.name in ("section", "div") and parent.get("id"):
        first_heading = parent.find(_HEADINGS)
        if first_heading is heading:
            return str(parent["id"])
    return slugify(heading.get_text(" ", strip=True))


def _is_chrome(tag: Tag) -> bool:
    if tag.name in _DROP_TAGS:
        return True
    attrs = tag.attrs
    if not attrs:
        return False
    classes = attrs.get("class") or ()
    return (
        any(c in _DROP_CLASSES for c in classes)
        or attrs.get("role") in _DROP_ROLES
        or attrs.get("id") in _DROP_IDS
    )


def _main_element(soup: BeautifulSoup) -> Tag:
    """The element holding the page's own text: <main> (its <article> if any), else
    role=main, <article>, Sphinx's div.body, or the whole <body>."""
    main = soup.find("main")
    if isinstance(main, Tag):
        article = main.find("article")
        return article if isinstance(article, Tag) else main
    for candidate in (
        soup.find(role="main"),
        soup.find("article"),
        soup.find("div", class_="body"),
        soup.body,
    ):
        if isinstance(candidate, Tag):
            return candidate
    return soup


def extract_links(soup: BeautifulSoup, base_url: str) -> list[str]:
    """Absolute, normalised links of the page (before chrome is stripped: nav holds the tree)."""
    links: list[str] = []
    for a in soup.find_all("a", href=True):
        href = str(a["href"]).strip()
        if not href or href.startswith(("mailto:", "javascript:", "tel:", "#")):
            continue
        links.append(normalize_url(urljoin(base_url, href)))
    return list(dict.fromkeys(links))


def html_to_sections(html: str, page_url: str) -> tuple[str, list[Section], list[str]]:
    """Parse HTML into (page title, sections, outgoing links)."""
    soup = BeautifulSoup(html, "lxml")
    links = extract_links(soup, page_url)
    title_tag = soup.find("title")
    page_title = title_tag.get_text(" ", strip=True) if title_tag else ""
    main = _main_element(soup)
    for tag in main.find_all(_is_chrome):
        tag.decompose()
    headings: list[tuple[str, str]] = []
    for heading in main.find_all(_HEADINGS):
        headings.append((_heading_anchor(heading), heading.get_text(" ", strip=True)))
        heading.replace_with(NavigableString("\n" + _MARK.format(len(headings) - 1) + "\n"))
    for tag in main.find_all(_BLOCK_TAGS):
        tag.append("\n")
    text = main.get_text()
    if headings and not page_title:
        page_title = headings[0][1]
    page_title = re.sub(r"\s+[—|]\s+[^—|]+$", "", page_title).strip() or page_title
    return page_title, _split_marked(text, headings, page_url, page_title), links


def _split_marked(
    text: str, headings: list[tuple[str, str]], page_url: str, page_title: str
) -> list[Section]:
    parts = _MARK_RE.split(text)
    sections: list[Section] = []
    lead = _tidy(parts[0])
    if lead:
        sections.append(Section(page_url, page_title, "", page_title, lead))
    for i in range(1, len(parts), 2):
        anchor, title = headings[int(parts[i])]
        body = _tidy(parts[i + 1])
        if body:
            sections.append(Section(page_url, page_title, anchor, title, body))
    return sections


_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+:.])\1{2,}\s*$")


def markdown_to_sections(
    text: str, page_url: str, fallback_title: str
) -> tuple[str, list[Section]]:
    """Split Markdown at ATX headings, ignoring '#' lines inside fenced code."""
    headings: list[tuple[str, str]] = []
    lines: list[str] = []
    in_fence = False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        match = None if in_fence else _MD_HEADING.match(line)
        if match:
            title = match.group(2).strip()
            headings.append((slugify(title), title))
            lines.append(_MARK.format(len(headings) - 1))
        else:
            lines.append(line)
    title = headings[0][1] if headings else fallback_title
    return title, _split_marked("\n".join(lines), headings, page_url, title)


def rst_to_sections(text: str, page_url: str, fallback_title: str) -> tuple[str, list[Section]]:
    """Split reStructuredText at underlined (and over-and-underlined) section titles."""
    src = text.splitlines()
    headings: list[tuple[str, str]] = []
    lines: list[str] = []
    i = 0
    while i < len(src):
        line = src[i]
        nxt = src[i + 1] if i + 1 < len(src) else ""
        is_title = (
            line.strip()
            and not _RST_UNDERLINE.match(line)
            and _RST_UNDERLINE.match(nxt)
            and len(nxt.rstrip()) >= len(line.rstrip())
        )
        if is_title:
            if lines and _RST_UNDERLINE.match(lines[-1]):
                lines.pop()  # overline of an over-and-underlined title
            title = line.strip()
            headings.append((slugify(title), title))
            lines.append(_MARK.format(len(headings) - 1))
            i += 2
            continue
        lines.append(line)
        i += 1
    title = headings[0][1] if headings else fallback_title
    return title, _split_marked("\n".join(lines), headings, page_url, title)


def text_to_sections(text: str, page_url: str, fallback_title: str) -> tuple[str, list[Section]]:
    """Plain text is one section titled after the file."""
    body = _tidy(text)
    return fallback_title, [
        Section(page_url, fallback_title, "", fallback_title, body)
    ] if body else []
