"""Train the prompt-injection head from the red-team dev set, and choose its threshold.

    python -m pipelines.train_guard --data ../shared/data/redteam/prompt-injections-dev.jsonl \
        --benign ../shared/data/ray-docs/qa-dev.jsonl --negatives-index index \
        [--out ragcore/guards/injection_head.npz]

The only labelled data is --data (JSON lines {"text", "label"}). Its benign rows are general
questions, unlike a documentation service's traffic: trained on them alone, the head learns
"not like those" and flags technical questions. --negatives-index adds unlabelled benign text
from the published index the service answers from (titles, headings, how-to questions made
from headings, first sentences: ragcore/adapt/pairs.py), never a user question. They join
every training fold and are never scored.

The threshold keeps two false-positive rates low: the dev set's benign rows (cross-validated
scores, at most --max-fpr) and real user questions (--benign, JSON lines with "question" or
"text", at most --max-benign-fpr). Prints repeated 5-fold cross-validated figures of the combined
detector (patterns, then the head).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.obfuscate import VARIANTS
from ragcore.adapt.pairs import corpus_queries
from ragcore.documents import Chunk
from ragcore.guards.injection import HEAD_PATH, InjectionHead, features
from ragcore.guards.normalize import normalize
from ragcore.guards.patterns import match_families

SEED = 0
CV_REPEATS = 3  # 5-fold CV repeated with other splits: one split moves detection by +-0.02
NEGATIVE_KINDS = ("title", "heading", "question", "sentence")  # API names are not prose


def read_rows(path: Path) -> tuple[list[str], np.ndarray]:
    """Texts and labels (0 when a row has none: a set of benign questions)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    texts = [str(r.get("text") or r.get("question") or "") for r in rows]
    return texts, np.array([int(r.get("label", 0)) for r in rows])


def corpus_negatives(chunks: Sequence[Chunk], count: int, seed: int = SEED) -> list[str]:
    """Up to `count` benign texts a reader of the corpus might type, drawn with a fixed seed.
    Texts a pattern family matches are left out: a page about prompt injection is not benign
    training data."""
    texts = sorted({q.text for q in corpus_queries(chunks) if q.kind in NEGATIVE_KINDS})
    clean = [text for text in texts if not match_families(normalize(text))]
    return random.Random(seed).sample(clean, min(count, len(clean)))


def _fit(x: np.ndarray, y: np.ndarray, c: float) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=5000, class_weight="balanced").fit(x, y)


def _with_negatives(x: np.ndarray, y: np.ndarray, negatives: np.ndarray) -> tuple[Any, Any]:
    return np.vstack([x, negatives]), np.concatenate([y, np.zeros(len(negatives), dtype=int)])


def cross_validated(
    x: np.ndarray,
    y: np.ndarray,
    c: float,
    negatives: np.ndarray,
    variants: Sequence[np.ndarray] = (),
    repeats: int = CV_REPEATS,
) -> np.ndarray:
    """Out-of-fold P(attack), shape (1 + len(variants), repeats, rows): for the labelled rows,
    then for each variant of them (the same rows rewritten, e.g. obfuscated), each row scored
    by the fold model that did not see it. `negatives` (feature rows of unlabelled benign text)
    join every training fold and are never scored."""
    from sklearn.model_selection import StratifiedKFold

    views = [x, *variants]
    oof = np.zeros((len(views), repeats, len(y)))
    for repeat in range(repeats):
        folds = StratifiedKFold(5, shuffle=True, random_state=SEED + repeat)
        for train, test in folds.split(x, y):
            model = _fit(*_with_negatives(x[train], y[train], negatives), c)
            for view, rows in enumerate(views):
                oof[view, repeat, test] = model.predict_proba(rows[test])[:, 1]
    return oof


def _negative_texts(args: argparse.Namespace) -> tuple[list[str], dict[str, Any]]:
    """The corpus negatives and what the head's meta says of them."""
    if args.negatives_index is None or args.negatives == 0:
        return [], {"negatives": 0}
    from ragcore.index_format import load_index

    index = load_index(args.negatives_index)
    texts = corpus_negatives(index.chunks, args.negatives)
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()
    return texts, {"negatives": len(texts), "negatives_sha256": digest,
                   "negatives_index_version": index.version,
                   "negatives_kinds": list(NEGATIVE_KINDS)}  # fmt: skip


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--benign", type=Path, required=True)
    p.add_argument(
        "--negatives-index",
        type=Path,
        default=None,
        help="published index root whose corpus gives benign training text",
    )
    p.add_argument(
        "--negatives", type=int, default=150, help="how many corpus texts to draw (0: none)"
    )
    p.add_argument("--out", type=Path, default=HEAD_PATH)
    p.add_argument("--c", type=float, default=30.0, help="inverse regularization strength")
    p.add_argument("--max-fpr", type=float, default=0.04)
    p.add_argument("--max-benign-fpr", type=float, default=0.005)
    return p.parse_args(argv)


def _patterns(texts: list[str]) -> np.ndarray:
    """Whether a pattern family matches each text."""
    return np.array([bool(match_families(normalize(t))) for t in texts])


def _flagged(texts: list[str], scores: np.ndarray, threshold: float) -> np.ndarray:
    """The combined detector's verdicts: a pattern family, or a score at the threshold."""
    return _patterns(texts) | (scores >= threshold)


def _cv_report(
    texts: list[str], y: np.ndarray, oof: np.ndarray, threshold: float
) -> dict[str, Any]:
    """Cross-validated figures of the combined detector, averaged over the repeats."""
    from sklearn.metrics import roc_auc_score

    patterns = _patterns(texts)
    flagged = patterns | (oof[0] >= threshold)  # one row per repeat
    detection = flagged[:, y == 1].mean(axis=1)
    kept = {}
    for (name, variant), scores in zip(VARIANTS.items(), oof[1:], strict=True):
        caught = _flagged([variant(t) for t in texts], scores, threshold)[:, y == 1]
        kept[name] = float((caught.mean(axis=1) / detection).mean())
    return {
        "cv_repeats": len(oof[0]),
        "cv_roc_auc_head": float(np.mean([roc_auc_score(y, scores) for scores in oof[0]])),
        "cv_detection_rate": float(detection.mean()),
        "cv_detection_rate_range": [float(detection.min()), float(detection.max())],
        "cv_false_positive_rate": float(flagged[:, y == 0].mean()),
        "cv_obfuscated_kept": kept,
        "patterns_detection_rate": float(patterns[y == 1].mean()),
    }


def main(argv: list[str] | None = None) -> int:
    """Train, choose the threshold, report, write the head."""
    from ragcore.embedding import SentenceEmbedder

    args = _arguments(argv)
    texts, y = read_rows(args.data)
    benign, _ = read_rows(args.benign)
    negatives, negatives_meta = _negative_texts(args)
    embed = SentenceEmbedder("all-MiniLM-L6-v2").embed
    x, xb = features(texts, embed), features(benign, embed)
    xn = features(negatives, embed) if negatives else np.zeros((0, x.shape[1]))
    variants = [features([variant(t) for t in texts], embed) for variant in VARIANTS.values()]
    oof = cross_validated(x, y, args.c, xn, variants)
    model = _fit(*_with_negatives(x, y, xn), args.c)
    head = InjectionHead(model.coef_[0].astype(np.float32), float(model.intercept_[0]), 0.0)
    benign_scores = head.scores(xb)
    threshold = float(max(np.quantile(oof[0][:, y == 0], 1 - args.max_fpr),
                          np.quantile(benign_scores, 1 - args.max_benign_fpr)))  # fmt: skip
    report = {
        "data_sha256": hashlib.sha256(args.data.read_bytes()).hexdigest(),
        "rows": len(y), "attacks": int(y.sum()), "c": args.c, "threshold": threshold,
        **negatives_meta, **_cv_report(texts, y, oof, threshold),
        "benign_questions": len(benign),
        "benign_false_positive_rate": float((benign_scores >= threshold).mean()),
    }  # fmt: skip
    print(json.dumps(report, indent=1))
    InjectionHead(head.coef, head.intercept, threshold, report).save(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
