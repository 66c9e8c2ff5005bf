"""Citation grounding and URL stripping, without Ray."""

from __future__ import annotations

from ragcore.citations import ground_citations, strip_urls

AUTOSCALING = "Serve autoscaling adjusts the number of replicas based on ongoing requests."
BATCHING = "Use serve.batch to group requests into one call for higher throughput."
SOURCES = ["https://docs.ray.io/en/master/serve/autoscaling.html#config",
           "https://docs.ray.io/en/master/serve/batching.html#batch"]  # fmt: skip


def test_out_of_range_citation_is_repaired_to_the_supporting_source() -> None:
    text = "Serve autoscaling adjusts the number of replicas based on ongoing requests [7]."
    cited = ground_citations(text, [BATCHING, AUTOSCALING], SOURCES)
    assert cited.text.endswith("requests [2].") and cited.cited == (2,)
    assert cited.invalid == 1 and cited.repaired == 1


def test_unsupported_invalid_citation_is_dropped() -> None:
    cited = ground_citations("Replicas are billed hourly by the marketplace [9].",
                             [AUTOSCALING], SOURCES[:1])  # fmt: skip
    assert "[9]" not in cited.text and cited.cited == () and cited.invalid == 1
    assert cited.repaired == 0 and cited.text.endswith("marketplace.")


def test_uncited_supported_sentence_gets_its_source_and_valid_ones_stay() -> None:
    text = "Use serve.batch to group requests into one call. Autoscaling adjusts replicas [1]."
    cited = ground_citations(text, [AUTOSCALING, BATCHING], SOURCES)
    assert cited.text.startswith("Use serve.batch to group requests into one call [2].")
    assert cited.cited == (2, 1) and cited.attributed == 1


def test_citation_forms_are_normalised_and_duplicates_merged() -> None:
    cited = ground_citations("Autoscaling adjusts replicas [Source 1, 1][1].", [AUTOSCALING],
                             SOURCES[:1])  # fmt: skip
    assert cited.text == "Autoscaling adjusts replicas [1]." and cited.cited == (1,)


def test_invented_urls_go_and_source_urls_stay() -> None:
    pages = {"/en/master/serve/autoscaling.html"}
    text = ("See https://docs.ray.io/en/master/serve/configuring-autoscaling-autoscaling.html "
            "or [the guide](https://example.com/x) and "
            "https://docs.ray.io/en/master/serve/autoscaling.html.")  # fmt: skip
    stripped, removed = strip_urls(text, pages)
    assert removed == 2 and "example.com" not in stripped and "configuring" not in stripped
    assert "the guide" in stripped and "serve/autoscaling.html" in stripped


def test_code_lines_get_no_citation() -> None:
    code = "autoscaling_config = {'min_replicas': 1} adjusts the number of replicas"
    cited = ground_citations(code, [AUTOSCALING + " autoscaling_config min_replicas"], SOURCES[:1])
    assert cited.text == code and cited.attributed == 0


def test_lines_and_code_keep_their_layout() -> None:
    text = "Steps:\n- Set num_replicas in the deployment [1].\n- Deploy it [3]."
    cited = ground_citations(text, [AUTOSCALING], SOURCES[:1], attribute=False)
    assert cited.text.count("\n") == 2 and "[3]" not in cited.text
