"""Query embeddings through ONNX Runtime: the vectors sentence-transformers gives (checked when
the model is exported), for less CPU per query.

PyTorch spends most of a short query's forward pass dispatching operators; ONNX Runtime runs the
same graph with fused kernels. Measured on this machine, one thread, the Ray docs dev questions
in length-sorted passes of 4: 6.0 ms a query with sentence-transformers, 2.6 ms here, vectors at
cosine 0.99999994 or closer (docs/benchmarks.md, "Serving load"). Only the query side uses it:
the index keeps the vectors the build job made, so nothing is rebuilt.

A model is exported once per weights file and kept under `models/onnx/` (git-ignored): written
to a temporary file, verified against sentence-transformers on probe texts, then renamed into
place, so a replica never loads a half-written or drifting graph.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from utils.errors import InputError
from utils.paths import PROJECT_ROOT

EXPORT_VERSION = 1  # bump when the export below changes, so cached graphs are redone
MIN_COSINE = 0.9999  # below this the query vectors would drift from the index's
ONNX_CACHE = PROJECT_ROOT / "models" / "onnx"
PROBES = [
    "How do I scale a Ray Serve deployment?",
    "ray.init",
    "What is the difference between a task and an actor, and when should I use placement groups "
    "to gang-schedule the resources of a distributed training job across nodes? " * 12,
    "Wie viele Replikate?",
]


class UnsupportedModel(InputError):
    """The model is not a Transformer + mean pooling sentence encoder, or lacks a fast
    tokenizer, so its ONNX graph would not give the same vectors."""


def check_supported(model_dir: Path) -> None:
    """Raise UnsupportedModel unless `model_dir` is a sentence-transformers model of a
    Transformer, mean pooling and (optionally) Normalize, with a tokenizer.json."""
    modules_file = model_dir / "modules.json"
    if not modules_file.exists() or not (model_dir / "tokenizer.json").exists():
        raise UnsupportedModel(f"{model_dir} has no modules.json or tokenizer.json")
    modules = json.loads(modules_file.read_text())
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise UnsupportedModel(f"{model_dir}: modules {kinds}, not Transformer + Pooling")
    pooling = json.loads((model_dir / modules[1]["path"] / "config.json").read_text())
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode_") and v is True}
    if modes != {"pooling_mode_mean_tokens"} and pooling.get("pooling_mode") != "mean":
        raise UnsupportedModel(f"{model_dir}: pooling {sorted(modes)}, not mean")


def _weights_key(model_dir: Path) -> str:
    """A cache key that changes with the weights, the export code and torch's exporter."""
    import torch

    digest = hashlib.sha256(f"{EXPORT_VERSION}:{torch.__version__}".encode())
    for path in sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.bin")):
        with path.open("rb") as f:
            while block := f.read(1 << 22):
                digest.update(block)
    return digest.hexdigest()[:20]


def exported_graph(model_dir: Path, cache_root: Path = ONNX_CACHE) -> Path:
    """The verified ONNX graph of `model_dir`'s transformer, exporting it on first use."""
    check_supported(model_dir)
    target = cache_root / _weights_key(model_dir) / "model.onnx"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, suffix=".onnx.tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _export(model_dir, tmp)
        _verify(model_dir, tmp)
        os.replace(tmp, target)  # atomic: concurrent replicas each publish a whole file
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _export(model_dir: Path, out: Path) -> None:
    """Trace the Hugging Face transformer to ONNX with dynamic batch and sequence axes."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(model_dir)).eval()

    class LastHiddenState(torch.nn.Module):
        """The transformer's token states, the input to mean pooling."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state  # fmt: skip

    names = ["input_ids", "attention_mask", "token_type_ids"]
    sample = tuple(torch.ones((2, 8), dtype=torch.long) for _ in names)
    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, "last_hidden_state"]}
    # The tracer warns that shape checks become constants; _verify checks the graph on batched,
    # padded and single inputs instead.
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(LastHiddenState(model), sample, str(out), input_names=names,
                          output_names=["last_hidden_state"], dynamic_axes=axes,
                          opset_version=17, dynamo=False)  # fmt: skip


def _verify(model_dir: Path, graph: Path) -> None:
    """Refuse a graph whose vectors differ from sentence-transformers' on the probes, batched
    (with padding) and one at a time."""
    from ragcore.embedding import SentenceEmbedder

    expected = SentenceEmbedder(str(model_dir), num_threads=1).embed(PROBES, batch_size=len(PROBES))
    encoder = OnnxSentenceEncoder(model_dir, graph, num_threads=1)
    for got in (encoder.embed(PROBES, len(PROBES)), encoder.embed(PROBES, 1)):
        cosine = float(np.min(np.sum(expected * got, axis=1)))
        if cosine < MIN_COSINE:
            raise UnsupportedModel(f"{model_dir}: ONNX vectors drift (cosine {cosine:.6f})")


class OnnxSentenceEncoder:
    """Normalised mean-pooled float32 vectors from an exported transformer graph."""

    def __init__(self, model_dir: Path, graph: Path, num_threads: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle worker threads must not spin: the replica shares its cores with others.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(_max_length(model_dir))
        self.tokenizer.no_padding()

    def embed(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Encode texts into an (n, dim) array of unit vectors; passes of `batch_size` texts
        sorted by length, so each pass pads little."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        parts = [self._encode([texts[i] for i in order[s : s + batch_size]])
                 for s in range(0, len(order), batch_size)]  # fmt: skip
        vectors = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
        vectors[order] = np.concatenate(parts)
        return vectors

    def _encode(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        (states,) = self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})
        summed = np.einsum("bsd,bs->bd", states, mask.astype(np.float32))
        pooled = summed / mask.sum(axis=1, keepdims=True).astype(np.float32)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def _max_length(model_dir: Path) -> int:
    """The model's max_seq_length (sentence-transformers truncates there), else 512."""
    config = model_dir / "sentence_bert_config.json"
    if config.exists():
        return int(json.loads(config.read_text()).get("max_seq_length") or 512)
    return 512


def load_onnx_encoder(model_dir: Path, num_threads: int = 1) -> OnnxSentenceEncoder:
    """An encoder for `model_dir`, exporting and verifying its graph on first use."""
    return OnnxSentenceEncoder(model_dir, exported_graph(model_dir), num_threads)
