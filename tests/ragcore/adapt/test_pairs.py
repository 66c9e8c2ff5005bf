"""Training pairs from a corpus: query generation, negative mining and examples."""

from __future__ import annotations

from ragcore.adapt.pairs import (
    Mined,
    TrainingQuery,
    api_names,
    corpus_queries,
    mine_pairs,
    sample_queries,
    section_queries,
    sentences,
    task_question,
    training_examples,
)
from tests.helpers import section_chunk


def test_api_names_prefer_repeated_and_specific_names() -> None:
    text = ("Use ray.serve.deployment and @serve.batch; ray.serve.deployment takes "
            "a ScalingConfig. See x.y and v1.2.")  # fmt: skip
    assert api_names(text) == ["ray.serve.deployment", "ScalingConfig"]


def test_sentences_skip_code_and_fragments() -> None:
    text = "Install it. The autoscaler adds replicas when queues grow long. Set x = {a: [b]}; <c>."
    assert sentences(text) == ["The autoscaler adds replicas when queues grow long."]


def test_task_questions_from_imperative_and_gerund_headings() -> None:
    assert task_question("Configuring autoscaling") == "How do I configure autoscaling?"
    assert task_question("Deploy a model:") == "How do I deploy a model?"
    assert task_question("Architecture overview") is None and task_question("Using") is None


def test_section_queries_are_unique_and_titled_once() -> None:
    first = section_queries("Serve", "Serve", "Serve scales models with ray.serve.run.", True)
    assert first == [("Serve", "title"), ("ray.serve.run", "api"),
                     ("Serve scales models with ray.serve.run.", "sentence")]  # fmt: skip
    later = section_queries("Serve", "Using batching", "Short.", False)
    assert later == [("Serve Using batching", "heading"), ("How do I use batching?", "question")]


def test_corpus_queries_pair_sections_and_drop_shared_boilerplate() -> None:
    boiler = "PublicAPI: This API is stable across Ray releases."
    chunks = [
        section_chunk(0, "a", "intro", f"Replicas scale out under heavy load. {boiler}", "A"),
        section_chunk(1, "a", "intro", "More text about replicas here.", "A"),
        section_chunk(2, "b", "intro", f"Checkpoints store the state of actors. {boiler}", "B"),
        section_chunk(3, "c", "intro", f"Logs rotate when they get too large. {boiler}", "C"),
    ]
    queries = corpus_queries(chunks)
    assert all(q.text != boiler for q in queries)  # three pages yield it
    replicas = next(q for q in queries if q.text.startswith("Replicas scale"))
    assert replicas.positives == (0, 1) and replicas.page_url == "a"
    assert {q.text for q in queries if q.kind == "title"} == {"A", "B", "C"}


def test_mining_never_labels_the_positive_page_or_text_negative() -> None:
    chunks = [section_chunk(0, "a", "s", "alpha"), section_chunk(1, "a", "t", "alpha two"),
              section_chunk(2, "b", "s", "alpha"), section_chunk(3, "c", "s", "gamma"),
              section_chunk(4, "d", "s", "delta"), section_chunk(5, "e", "s", "eps")]  # fmt: skip
    query = TrainingQuery("alpha?", "question", "a", (0,))
    ranked = [[0, 1, 2, 3, 4, 5]]
    mined = mine_pairs([query], chunks, lambda qs: ranked * len(qs), per_query=2)
    assert mined == [Mined(0, (3, 4))]  # not page a, not b's copy of the positive text
    skipped = mine_pairs([query], chunks, lambda qs: ranked, per_query=2, skip=1)
    assert skipped == [Mined(0, (4, 5))]
    examples = training_examples([query], skipped, chunks, lambda c: c.text.upper())
    assert examples[0].positive == "ALPHA" and examples[0].negatives == ("DELTA", "EPS")
    assert training_examples([query], [Mined(0, ())], chunks, lambda c: c.text) == []


def test_the_positive_is_the_section_chunk_that_answers_the_query() -> None:
    """Not a random chunk of the section: the hard negatives resemble the query most, so a
    positive that does not would teach that resemblance means irrelevance."""
    chunks = [section_chunk(0, "a", "s", "intro"), section_chunk(1, "a", "s", "install with pip"),
              section_chunk(2, "a", "s", "more"), section_chunk(3, "b", "s", "pip")]  # fmt: skip
    query = TrainingQuery("Install with pip", "sentence", "a", (0, 1, 2))
    ranked = mine_pairs([query], chunks, lambda qs: [[3, 2, 1, 0]], per_query=1)
    assert ranked == [Mined(2, (3,))]  # the ranker's best chunk of the section
    unranked = mine_pairs([query], chunks, lambda qs: [[3]], per_query=1)
    assert unranked == [Mined(1, (3,))]  # else the chunk holding the query's text
    other = TrainingQuery("Uninstall", "sentence", "a", (0, 1, 2))
    assert mine_pairs([other], chunks, lambda qs: [[3]], per_query=1) == [Mined(0, (3,))]


def test_sampling_is_seeded_and_keeps_corpus_order() -> None:
    queries = [TrainingQuery(str(i), "title", str(i), (i,)) for i in range(100)]
    picked = sample_queries(queries, 10, seed=3)
    assert picked == sample_queries(queries, 10, seed=3) != sample_queries(queries, 10, seed=4)
    assert [q.text for q in picked] == sorted((q.text for q in picked), key=int)
    assert sample_queries(queries, 200, seed=3) == queries


def test_random_negatives_come_from_other_pages_and_are_seeded() -> None:
    chunks = [section_chunk(0, "a", "s", "alpha"), section_chunk(1, "a", "t", "alpha two")]
    chunks += [section_chunk(row, f"p{row}", "s", f"text {row}") for row in range(2, 40)]
    query = TrainingQuery("alpha", "title", "a", (0,))
    mine = lambda seed: mine_pairs([query], chunks, lambda qs: [[0, 2, 3]], per_query=1,  # noqa: E731
                                   random_negatives=3, seed=seed)  # fmt: skip
    first = mine(5)[0]
    assert first.negatives[0] == 2 and len(first.negatives) == 4
    assert all(chunks[r].page_url != "a" for r in first.negatives)
    assert len(set(first.negatives)) == 4 and mine(5) == [first]
