"""Train the prompt-injection head from the red-team dev set, and choose its threshold.

    python -m pipelines.train_guard --data ../shared/data/redteam/prompt-injections-dev.jsonl \
        --benign ../shared/data/ray-docs/qa-dev.jsonl [--out ragcore/guards/injection_head.npz]

Trains only on --data (JSON lines {"text", "label"}). The threshold keeps two false-positive
rates low: the dev set's benign rows (cross-validated scores, at most --max-fpr) and real user
questions (--benign, JSON lines with "question" or "text", at most --max-benign-fpr). Prints
5-fold cross-validated figures of the combined detector (patterns, then the head).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from ragcore.guards.injection import HEAD_PATH, InjectionHead, features
from ragcore.guards.normalize import normalize
from ragcore.guards.patterns import match_families

SEED = 0


def read_rows(path: Path) -> tuple[list[str], np.ndarray]:
    """Texts and labels (0 when a row has none: a set of benign questions)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    texts = [str(r.get("text") or r.get("question") or "") for r in rows]
    return texts, np.array([int(r.get("label", 0)) for r in rows])


def cross_validated(x: np.ndarray, y: np.ndarray, c: float) -> np.ndarray:
    """Out-of-fold P(attack) for every row."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = StratifiedKFold(5, shuffle=True, random_state=SEED)
    model = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
    return np.asarray(cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1])


def main(argv: list[str] | None = None) -> int:
    """Train, choose the threshold, report, write the head."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from ragcore.embedding import SentenceEmbedder

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--benign", type=Path, required=True)
    p.add_argument("--out", type=Path, default=HEAD_PATH)
    p.add_argument("--c", type=float, default=10.0, help="inverse regularization strength")
    p.add_argument("--max-fpr", type=float, default=0.05)
    p.add_argument("--max-benign-fpr", type=float, default=0.005)
    args = p.parse_args(argv)
    texts, y = read_rows(args.data)
    benign, _ = read_rows(args.benign)
    embedder = SentenceEmbedder("all-MiniLM-L6-v2")
    x, xb = features(texts, embedder.embed), features(benign, embedder.embed)
    oof = cross_validated(x, y, args.c)
    model = LogisticRegression(C=args.c, max_iter=5000, class_weight="balanced").fit(x, y)
    head = InjectionHead(model.coef_[0].astype(np.float32), float(model.intercept_[0]), 0.0)
    benign_scores = head.scores(xb)
    threshold = float(max(np.quantile(oof[y == 0], 1 - args.max_fpr),
                          np.quantile(benign_scores, 1 - args.max_benign_fpr)))  # fmt: skip
    patterns = np.array([bool(match_families(normalize(t))) for t in texts])
    flagged = patterns | (oof >= threshold)
    report = {
        "data_sha256": hashlib.sha256(args.data.read_bytes()).hexdigest(),
        "rows": len(y), "attacks": int(y.sum()), "c": args.c, "threshold": threshold,
        "cv_roc_auc_head": float(roc_auc_score(y, oof)),
        "cv_detection_rate": float(flagged[y == 1].mean()),
        "cv_false_positive_rate": float(flagged[y == 0].mean()),
        "patterns_detection_rate": float(patterns[y == 1].mean()),
        "benign_questions": len(benign),
        "benign_false_positive_rate": float((benign_scores >= threshold).mean()),
    }  # fmt: skip
    print(json.dumps(report, indent=1))
    InjectionHead(head.coef, head.intercept, threshold, report).save(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
