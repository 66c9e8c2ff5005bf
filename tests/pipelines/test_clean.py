# ruff: noqa: E501
from pipelines.clean import html_to_sections, markdown_to_sections, rst_to_sections

SPHINX_PAGE = """<!DOCTYPE html><html><head><title>Ray Serve: Scalable Serving — Ray 3.0</title>
<script>var tracking = "SCRIPT_SECRET";</script><style>.x{color:red}</style></head>
<body><header class="navbar"><a href="/en/master/">Home HEADER_TEXT</a></header>
<nav class="bd-sidebar"><ul><li><a href="/en/master/serve/other.html">NAV_LINK_TEXT</a></li></ul></nav>
<main><article role="main">
<section id="ray-serve-scalable-serving"><h1>Ray Serve: Scalable Serving<a class="headerlink" href="#ray-serve-scalable-serving">#</a></h1>
<p>Ray Serve is a <code>scalable</code> model serving library.</p>
<section id="key-concepts"><h2>Key Concepts<a class="headerlink" href="#key-concepts">#</a></h2>
<p>A deployment holds business logic.</p>
<div class="highlight"><pre><span>serve</span>.<span>run</span>(app)</pre></div>
</section>
<section id="batching"><h2>Batching</h2><ul><li>Use serve.batch</li><li>Tune max_batch_size</li></ul></section>
</section></article></main>
<footer>FOOTER_TEXT Copyright</footer></body></html>"""


def test_html_keeps_content_and_drops_chrome() -> None:
    title, sections, links = html_to_sections(SPHINX_PAGE, "http://h/en/master/serve/index.html")
    text = "\n".join(s.text for s in sections)
    assert title == "Ray Serve: Scalable Serving"
    assert "model serving library" in text and "serve.run(app)" in text
    for chrome in ("SCRIPT_SECRET", "NAV_LINK_TEXT", "HEADER_TEXT", "FOOTER_TEXT", "color:red"):
        assert chrome not in text
    assert "<p>" not in text and "<span>" not in text
    assert "Ray Serve is a scalable model serving library." in text  # inline code stays inline
    assert "http://h/en/master/serve/other.html" in links  # links come from nav before stripping


def test_html_sections_carry_anchor_and_title() -> None:
    _, sections, _ = html_to_sections(SPHINX_PAGE, "http://h/en/master/serve/index.html")
    by_anchor = {s.anchor: s for s in sections}
    assert list(by_anchor) == ["ray-serve-scalable-serving", "key-concepts", "batching"]
    assert by_anchor["key-concepts"].section_title == "Key Concepts"
    assert "deployment holds business logic" in by_anchor["key-concepts"].text
    assert "Batching" not in by_anchor["key-concepts"].text
    assert by_anchor["batching"].source == "http://h/en/master/serve/index.html#batching"
    assert "Use serve.batch\nTune max_batch_size" in by_anchor["batching"].text


def test_markdown_splits_at_headings_but_not_in_code() -> None:
    md = "# Title\nintro\n## Setup Steps\n```\n# comment\n```\nrun it\n### Deep\nx"
    title, sections = markdown_to_sections(md, "docs/a.md", "a")
    assert title == "Title"
    assert [(s.anchor, s.section_title) for s in sections] == [
        ("title", "Title"),
        ("setup-steps", "Setup Steps"),
        ("deep", "Deep"),
    ]
    assert "# comment" in sections[1].text


def test_rst_underlined_and_overlined_titles() -> None:
    rst = "=====\nGuide\n=====\n\nHello.\n\nInstall It\n----------\n\npip install x\n"
    title, sections = rst_to_sections(rst, "docs/g.rst", "g")
    assert title == "Guide"
    assert [s.anchor for s in sections] == ["guide", "install-it"]
    assert sections[1].text == "pip install x"
