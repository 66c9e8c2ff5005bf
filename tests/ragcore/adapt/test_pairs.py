"""Training pairs from a corpus: query generation, negative mining and examples."""

from __future__ import annotations

from ragcore.adapt.pairs import (
    TrainingQuery,
    api_names,
    corpus_queries,
    mine_negatives,
    sample_queries,
    section_queries,
    sentences,
    task_question,
    training_examples,
)
from ragcore.documents import Chunk


def _chunk(row: int, page: str, section: str, text: str, title: str = "Page") -> Chunk:
    return Chunk(f"id{row}", text, f"{page}#{section}", page, title, section)


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
        _chunk(0, "a", "intro", f"Replicas scale out under heavy load. {boiler}", "A"),
        _chunk(1, "a", "intro", "More text about replicas here.", "A"),
        _chunk(2, "b", "intro", f"Checkpoints store the state of actors. {boiler}", "B"),
        _chunk(3, "c", "intro", f"Logs rotate when they get too large. {boiler}", "C"),
    ]
    queries = corpus_queries(chunks)
    assert all(q.text != boiler for q in queries)  # three pages yield it
    replicas = next(q for q in queries if q.text.startswith("Replicas scale"))
    assert replicas.positives == (0, 1) and replicas.page_url == "a"
    assert {q.text for q in queries if q.kind == "title"} == {"A", "B", "C"}


def test_mining_never_labels_the_positive_page_or_text_negative() -> None:
    chunks = [_chunk(0, "a", "s", "alpha"), _chunk(1, "a", "t", "alpha two"),
              _chunk(2, "b", "s", "alpha"), _chunk(3, "c", "s", "gamma"),
              _chunk(4, "d", "s", "delta"), _chunk(5, "e", "s", "eps")]  # fmt: skip
    query = TrainingQuery("alpha?", "question", "a", (0,))
    ranked = [[0, 1, 2, 3, 4, 5]]
    negatives = mine_negatives([query], chunks, lambda qs: ranked * len(qs), per_query=2)
    assert negatives == [[3, 4]]  # not page a, not b's copy of the positive text
    skipped = mine_negatives([query], chunks, lambda qs: ranked, per_query=2, skip=1)
    assert skipped == [[4, 5]]
    examples = training_examples([query], skipped, chunks, lambda c: c.text.upper(), seed=1)
    assert examples[0].positive == "ALPHA" and examples[0].negatives == ("DELTA", "EPS")
    assert training_examples([query], [[]], chunks, lambda c: c.text, seed=1) == []


def test_sampling_is_seeded_and_keeps_corpus_order() -> None:
    queries = [TrainingQuery(str(i), "title", str(i), (i,)) for i in range(100)]
    picked = sample_queries(queries, 10, seed=3)
    assert picked == sample_queries(queries, 10, seed=3) != sample_queries(queries, 10, seed=4)
    assert [q.text for q in picked] == sorted((q.text for q in picked), key=int)
    assert sample_queries(queries, 200, seed=3) == queries
