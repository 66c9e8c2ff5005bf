"""Score the injection guard on a labelled set ({"text", "label"}, 1 = attack), in process:
detection and false-positive rates, precision, F1, ROC-AUC, latency per guard, false
positives on real user questions, and detection kept on obfuscated variants of the attacks."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.obfuscate import VARIANTS
from ragcore.guards.injection import InjectionDetector, features
from ragcore.guards.normalize import normalize
from ragcore.guards.patterns import match_families


def read_labelled(path: Path) -> tuple[list[str], list[int]]:
    """Texts and labels of a JSON-lines set; a row without a label counts as benign."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return ([str(r.get("text") or r.get("question") or "") for r in rows],
            [int(r.get("label", 0)) for r in rows])  # fmt: skip


def rates(flagged: list[bool], labels: list[int], scores: list[float]) -> dict[str, float]:
    """The classification figures that the labels define (a one-label set gets only its rate)."""
    f, y = np.array(flagged, bool), np.array(labels, int)
    out: dict[str, float] = {"items": float(len(y))}
    if (y == 1).any():
        out["detection_rate"] = float(f[y == 1].mean())
    if (y == 0).any():
        out["false_positive_rate"] = float(f[y == 0].mean())
    if (y == 1).any() and (y == 0).any():
        from sklearn.metrics import roc_auc_score

        tp = float((f & (y == 1)).sum())
        precision = tp / max(1.0, float(f.sum()))
        recall = out["detection_rate"]
        out["precision"] = precision
        out["f1"] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out["roc_auc"] = float(roc_auc_score(y, scores))
    return out


def latency(detector: InjectionDetector, texts: list[str]) -> dict[str, float]:
    """p50/p99 ms per text of each guard layer, and of all input guards together."""
    timings: dict[str, list[float]] = {"patterns": [], "classifier": [], "all_input_guards": []}
    for text in texts:
        start = time.perf_counter()
        match_families(normalize(text))
        mid = time.perf_counter()
        detector.head.scores(features([text], detector.embed))
        end = time.perf_counter()
        timings["patterns"].append((mid - start) * 1000)
        timings["classifier"].append((end - mid) * 1000)
        timings["all_input_guards"].append((end - start) * 1000)
    return {f"{name}_{q}_ms": float(np.percentile(v, int(q[1:])))
            for name, v in timings.items() for q in ("p50", "p99")}  # fmt: skip


def evaluate_redteam(
    detector: InjectionDetector,
    data: Path,
    benign: Path | None = None,
    extraction: Path | None = None,
) -> dict[str, Any]:
    """Every figure of the report for one labelled set."""
    texts, labels = read_labelled(data)
    found = detector.detect_many(texts)
    report: dict[str, Any] = rates([d.flagged for d in found], labels, [d.score for d in found])
    attacks = [t for t, y in zip(texts, labels, strict=True) if y == 1]
    if attacks and "detection_rate" in report:
        clean = report["detection_rate"]
        for name, variant in VARIANTS.items():
            rate = float(np.mean([d.flagged for d in detector.detect_many(
                [variant(t) for t in attacks])]))  # fmt: skip
            report[f"obfuscated_{name}_detection_rate"] = rate
            report[f"obfuscated_{name}_kept"] = rate / clean if clean else 0.0
    if benign is not None and benign.exists():
        questions, _ = read_labelled(benign)
        report["benign_questions_false_positive_rate"] = float(
            np.mean([d.flagged for d in detector.detect_many(questions)])
        )
    if extraction is not None and extraction.exists():
        attempts, _ = read_labelled(extraction)
        report["extraction_refused_at_input_rate"] = float(
            np.mean([d.flagged for d in detector.detect_many(attempts)])
        )  # the leak rate needs a model: --url
    report.update(latency(detector, texts[:200]))
    report["threshold"] = detector.head.threshold
    return report
