from utils.urls import in_scope, normalize_url, page_key, section_key


def test_normalize_drops_fragment_default_port_and_index() -> None:
    assert (
        normalize_url("HTTP://Docs.Ray.io:80/en/master/index.html#x")
        == "http://docs.ray.io/en/master/"
    )
    assert normalize_url("https://h:8443/a/b.html?q=1#f") == "https://h:8443/a/b.html?q=1"


def test_page_key_ignores_scheme_host_and_anchor() -> None:
    local = "http://127.0.0.1:8123/en/master/serve/index.html#top"
    assert page_key(local) == page_key("https://docs.ray.io/en/master/serve/")
    assert section_key("https://docs.ray.io/en/master/a.html#b") == "/en/master/a.html#b"
    assert section_key("https://docs.ray.io/en/master/a.html") == "/en/master/a.html"


def test_scope_is_host_and_path_prefix() -> None:
    seed = "http://h/en/master/serve/index.html"
    assert in_scope("http://h/en/master/serve/deep/x.html", seed)
    assert not in_scope("http://h/en/master/data/x.html", seed)
    assert not in_scope("http://other/en/master/serve/x.html", seed)
    assert in_scope("http://h/en/master/serve", "http://h/en/master/serve/")
