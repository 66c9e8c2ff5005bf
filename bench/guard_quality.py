"""Guard quality (issue 11): the injection detector cross-validated on the red-team dev set and
timed on this CPU, obfuscated variants, false positives on real questions, and PII recall and
precision per entity on the Faker set; next to the published anchors.

    python bench/guard_quality.py

Uses ../shared/data (red-team dev set, Ray-docs dev questions). Writes
bench/results/guard_quality.json and its section of docs/benchmarks.md.
"""

from __future__ import annotations

import sys
import time
from typing import Any

try:
    from bench import common
except ModuleNotFoundError:  # `python bench/x.py` puts only bench/ on sys.path
    import common  # type: ignore[no-redef]

from bench.chunk_scan_quality import scan_figures
from bench.report import table
from evaluation.pii_set import generate, score
from evaluation.redteam import evaluate_redteam
from ragcore.embedding import SentenceEmbedder, query_embedder_for
from ragcore.guards.injection import InjectionDetector, InjectionHead
from ragcore.guards.pii import PiiRedactor
from utils.settings import ServiceSettings

ONE_TEXT = "this CPU, 1 text, the service's query encoder"
SHARED = common.ROOT.parent / "shared" / "data"
ANCHORS = [
    ["deepset/deberta-v3-base-injection (its own split)", "0.991", "published"],
    ["ProtectAI deberta-v3-base-prompt-injection-v2 (PINT)", "0.916", "published"],
]


def main() -> int:
    """Measure and write the section."""
    data = SHARED / "redteam" / "prompt-injections-dev.jsonl"
    benign = SHARED / "ray-docs" / "qa-dev.jsonl"
    if not data.exists():
        print(f"error: {data} is absent", file=sys.stderr)
        return 2
    head = InjectionHead.load()
    embedder = SentenceEmbedder("all-MiniLM-L6-v2")  # as the build embeds chunks
    encoder = query_embedder_for(ServiceSettings())  # as the Ingress embeds questions
    detector = InjectionDetector(encoder.embed_now, head)
    scan = scan_figures(common.RAY_DOCS_INDEX, data, embedder)
    inside = evaluate_redteam(detector, data, benign)
    redactor = PiiRedactor()
    pii = score(generate(600), redactor.find)
    questions = [str(q) for q in common.load_questions()[:200]]
    timings = []
    for question in questions:
        start = time.perf_counter()
        redactor.redact(question)
        timings.append(time.perf_counter() - start)
    pii_p50 = common.pct(timings, 50)
    meta = head.meta
    body: list[Any] = [
        "Injection detector (patterns, then the head). The head is trained on the dev set and "
        f"on {meta.get('negatives', 0)} unlabelled benign texts drawn from the Ray-docs index "
        "it guards (titles, headings, how-to questions made from headings, first sentences; "
        "never a user question), so the honest figures are the cross-validated ones: 5-fold, "
        f"repeated {meta.get('cv_repeats', 1)} times with other splits, every dev row scored "
        "by a model that did not see it. The in-sample row only shows the fit. No held-out set "
        "is available here.",
        "",
        table(["measure", "value", "how"], [
            ["detection rate", meta["cv_detection_rate"],
             "CV on the dev set (repeats: {:.3f} to {:.3f})".format(
                 *meta["cv_detection_rate_range"])],
            ["false-positive rate", meta["cv_false_positive_rate"], "CV on the dev set"],
            ["head ROC-AUC", meta["cv_roc_auc_head"], "CV on the dev set"],
            ["patterns alone: detection", meta["patterns_detection_rate"], "dev set (no fit)"],
            ["Ray-docs questions flagged", inside["benign_questions_false_positive_rate"],
             "213 dev questions (the threshold may flag at most 0.5% of them)"],
            ["detection, in-sample", inside["detection_rate"], "the training set itself"],
            *[[f"kept on {v} variants", kept, "CV: detection on the variants / clean"]
              for v, kept in meta["cv_obfuscated_kept"].items()],
            ["injection guard p50 (ms)", inside["all_input_guards_p50_ms"], ONE_TEXT],
            ["injection guard p99 (ms)", inside["all_input_guards_p99_ms"], ONE_TEXT],
            ["PII redaction p50 (ms)", pii_p50, "this CPU, Ray-docs questions"],
            ["all input guards p50 (ms)", inside["all_input_guards_p50_ms"] + pii_p50,
             "the two above (target < 10)"],
        ], "lrl", [None, ".3f", None]),
        "",
        f"Build-time scan of chunks (indirect injection), on the full Ray-docs index "
        f"({scan['chunks']} chunks): the pattern families, and the head on each chunk's build "
        f"vector at the chunk threshold {scan['threshold']}. Planted: each dev-set row as a "
        "paragraph of its own at a random place in a random real chunk, re-embedded as the "
        "build embeds it.",
        "",
        table(["measure", "value"], [
            ["real chunks flagged", str(scan["real_chunks_flagged"])],
            ["real chunks flagged, rate", scan["real_chunk_false_positive_rate"]],
            [f"planted attacks flagged ({scan['planted_attacks']})",
             scan["planted_attacks_flagged_rate"]],
            ["planted attacks flagged by the patterns alone",
             scan["planted_attacks_flagged_by_patterns_rate"]],
            [f"planted benign dev rows flagged ({scan['planted_benign_rows']})",
             scan["planted_benign_rows_flagged_rate"]],
            ["scan time per 1,000 chunks (ms)", scan["scan_ms_per_1000_chunks"]],
        ], "lr", [None, ".3f"]),
        "",
        "Published anchors (other models, other data; not comparable run for run):",
        "",
        table(["model", "detection / accuracy", "source"], ANCHORS, "lrl"),
        "",
        "PII: presidio pattern recognizers plus ours, on 600 Faker questions (540 with PII).",
        "",
        table(["entity", "planted", "recall", "detections", "precision"],
              [[e, r["planted"], r["recall"], r["detections"], r["precision"]]
               for e, r in pii.items()], "lrrrr", [None, None, ".3f", None, ".3f"]),
    ]  # fmt: skip
    payload = {"title": "Guards: injection detection and PII (issue 11)",
               "intro": "`python bench/guard_quality.py`.", "body": body,
               "injection": inside, "head": meta, "pii": pii, "chunk_scan": scan}  # fmt: skip
    common.write_results("guard_quality", payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
