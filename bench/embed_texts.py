"""Embed exported chunk texts on another machine (a GPU box), for bench/chunking_ablation.py.

    python bench/embed_texts.py --model DIR --texts DIR --out DIR [--device cuda] NAME...

Needs only torch and transformers (and this bench/ folder). Reads TEXTS/NAME.json.gz (a JSON
list of strings) and writes OUT/NAME.pN.npy parts (float16, 16,000 rows each, in input order):
all-MiniLM-L6-v2's own recipe (mean pooling over the attention mask, max 256 tokens, L2
normalisation), so the vectors match sentence-transformers' (cosine >= 0.9999 checked against
the CPU build's vectors).
Timings go to bench/results/embed_texts.json (no section in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path
from typing import Any

try:
    from bench import common
except ModuleNotFoundError:  # `python bench/x.py` puts only bench/ on sys.path
    import common  # type: ignore[no-redef]

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

PART_ROWS = 16_000


def embed(texts: list[str], tokenizer, model, device: str, batch: int = 256) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Unit vectors for `texts`, batched by length to cut padding."""
    order = np.argsort([len(t) for t in texts])
    out = np.zeros((len(texts), model.config.hidden_size), np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), batch):
            rows = order[start : start + batch]
            enc = tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=256,
                return_tensors="pt",
            ).to(device)
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[rows] = torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy()
    return out


def main() -> int:
    """Embed each NAME's texts, write the vector parts and the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="the model's HF directory")
    parser.add_argument("--texts", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("names", nargs="+")
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModel.from_pretrained(args.model, dtype=torch.float32).to(args.device).eval()
    args.out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, dict[str, Any]] = {}
    for name in args.names:
        with gzip.open(args.texts / f"{name}.json.gz", "rt", encoding="utf-8") as handle:
            texts = json.load(handle)
        started = time.perf_counter()
        vectors = embed(texts, tokenizer, model, args.device)
        for part, start in enumerate(range(0, len(vectors), PART_ROWS)):
            chunk = vectors[start : start + PART_ROWS].astype(np.float16)
            np.save(args.out / f"{name}.p{part}.npy", chunk)
        seconds = time.perf_counter() - started
        timings[name] = {
            "texts": len(texts),
            "seconds": seconds,
            "texts_per_s": len(texts) / seconds,
        }
        print(f"{name}: {len(texts)} texts in {seconds:.1f} s", flush=True)
    if not args.no_write:
        device = torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device
        payload = {"device": device, "model": str(args.model), "timings": timings}
        common.write_results("embed_texts", payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
