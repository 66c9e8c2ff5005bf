"""The two learners of corpus adaptation, with sentence-transformers' own trainers.

- `train_reranker`: a cross-encoder started from the MiniLM encoder's weights (a fresh
  one-logit head over the mean-pooled pair), trained with binary cross-entropy on
  (query, positive) and (query, negative) pairs.
- `train_embedder`: the bi-encoder itself, fine-tuned with in-batch and hard negatives
  (MultipleNegativesRankingLoss).

Both checkpoint every `checkpoint_steps` into `work_dir` and resume from the newest checkpoint
there, so a killed training continues where it stopped; the data order is seeded, so the
resumed run sees the same batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragcore.adapt.pairs import TrainingExample
from utils.settings import AdaptSettings

Progress = Callable[[int, int, float], None]  # step, total steps, seconds so far


@dataclass(frozen=True)
class TrainedModel:
    """A trained model directory and how it was made."""

    path: Path
    learner: str
    examples: int
    steps: int
    seconds: float
    resumed_from: int  # the checkpoint step training resumed from (0: a fresh start)


def latest_checkpoint(work_dir: Path) -> tuple[Path | None, int]:
    """The newest complete `checkpoint-N` in `work_dir`, and N."""
    best: tuple[Path | None, int] = (None, 0)
    for path in work_dir.glob("checkpoint-*"):
        step = path.name.rsplit("-", 1)[-1]
        if step.isdigit() and (path / "trainer_state.json").exists() and int(step) > best[1]:
            best = (path, int(step))
    return best


def _arguments(cls: Any, work_dir: Path, settings: AdaptSettings, device: str) -> Any:
    return cls(
        output_dir=str(work_dir),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        warmup_steps=0.1,  # a float is a share of the steps
        save_strategy="steps",
        save_steps=settings.checkpoint_steps,
        save_total_limit=2,
        logging_steps=max(1, settings.checkpoint_steps // 4),
        seed=settings.seed,
        data_seed=settings.seed,
        report_to="none",
        use_cpu=device == "cpu",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def _progress_callback(progress: Progress | None) -> Any:
    from transformers import TrainerCallback

    class _Report(TrainerCallback):
        def __init__(self) -> None:
            self.start = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if progress is not None:
                progress(state.global_step, state.max_steps, time.perf_counter() - self.start)

    return _Report()


def _keep_layers(model: Any, layers: int) -> None:
    """Keep the first `layers` encoder layers (cost per query pair is linear in them)."""
    if layers < model.config.num_hidden_layers:
        model.base_model.encoder.layer = model.base_model.encoder.layer[:layers]
        model.config.num_hidden_layers = layers


def mean_pooled_cross_encoder(
    base_model: str, layers: int, max_length: int, device: str = "cpu"
) -> Any:
    """A cross-encoder over the pair's mean-pooled token states, with a one-logit head.

    Not the usual [CLS] pooler head: MiniLM was trained to be read by mean pooling, so its
    [CLS] state carries little of the pair, and a [CLS] head trained on this CPU stayed at
    chance for 250 steps (at 2 layers it had not left chance on a 4-pair toy set after 16
    steps, where the mean-pooled head reached a loss of 0.05). It saves and loads as any
    sentence-transformers CrossEncoder."""
    from sentence_transformers.base.modules import Dense, Transformer
    from sentence_transformers.cross_encoder import CrossEncoder
    from sentence_transformers.sentence_transformer.modules import Pooling

    encoder = Transformer(base_model, max_seq_length=max_length)
    _keep_layers(encoder.auto_model, layers)
    width = encoder.auto_model.config.hidden_size
    head = Dense(width, 1, activation_function=None, module_output_name="scores")
    return CrossEncoder(modules=[encoder, Pooling(width, "mean"), head], device=device)


def _fit(
    trainer_cls: Any,
    model: Any,
    args: Any,
    rows: dict[str, list[Any]],
    loss: Any,
    out_dir: Path,
    progress: Progress | None,
) -> tuple[int, int]:
    """Train from the newest checkpoint in `args.output_dir` (if any) and save the model to
    `out_dir`; the steps done in all, and the step resumed from."""
    from datasets import Dataset

    trainer = trainer_cls(model=model, args=args, train_dataset=Dataset.from_dict(rows),
                          loss=loss, callbacks=[_progress_callback(progress)])  # fmt: skip
    checkpoint, step = latest_checkpoint(Path(args.output_dir))
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    model.save_pretrained(str(out_dir))
    return int(trainer.state.global_step), step


def train_reranker(
    examples: list[TrainingExample],
    base_model: str,
    out_dir: Path,
    work_dir: Path,
    settings: AdaptSettings,
    device: str = "cpu",
    progress: Progress | None = None,
) -> TrainedModel:
    """Train the cross-encoder reranker and save it to `out_dir`."""
    import torch
    from sentence_transformers.cross_encoder import (
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    start = time.perf_counter()
    rows: dict[str, list[Any]] = {"query": [], "passage": [], "label": []}
    for example in examples:
        for text, label in [(example.positive, 1.0), *((n, 0.0) for n in example.negatives)]:
            rows["query"].append(example.query)
            rows["passage"].append(text)
            rows["label"].append(label)
    model = mean_pooled_cross_encoder(base_model, settings.reranker_layers, settings.max_length,
                                      device)  # fmt: skip
    negatives_per_positive = max(1.0, (len(rows["label"]) - len(examples)) / max(1, len(examples)))
    loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(negatives_per_positive))
    args = _arguments(CrossEncoderTrainingArguments, work_dir, settings, device)
    steps, resumed = _fit(CrossEncoderTrainer, model, args, rows, loss, out_dir, progress)
    return TrainedModel(out_dir, "reranker", len(examples), steps,
                        time.perf_counter() - start, resumed)  # fmt: skip


def train_embedder(
    examples: list[TrainingExample],
    base_model: str,
    out_dir: Path,
    work_dir: Path,
    settings: AdaptSettings,
    device: str = "cpu",
    progress: Progress | None = None,
) -> TrainedModel:
    """Fine-tune the bi-encoder on (query, positive, hard negative) triplets and save it."""
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    from sentence_transformers.training_args import BatchSamplers

    from utils.models import load_sentence_transformer

    start = time.perf_counter()
    usable = [e for e in examples if e.negatives]
    rows: dict[str, list[Any]] = {"anchor": [e.query for e in usable],
                                  "positive": [e.positive for e in usable],
                                  "negative": [e.negatives[0] for e in usable]}  # fmt: skip
    model = load_sentence_transformer(base_model, device=device)
    model.max_seq_length = settings.max_length
    args = _arguments(SentenceTransformerTrainingArguments, work_dir, settings, device)
    # No two examples of one batch share a text, or in-batch negatives would be positives.
    args.batch_sampler = BatchSamplers.NO_DUPLICATES
    loss = MultipleNegativesRankingLoss(model)
    steps, resumed = _fit(SentenceTransformerTrainer, model, args, rows, loss, out_dir, progress)
    return TrainedModel(out_dir, "embedder", len(usable), steps,
                        time.perf_counter() - start, resumed)  # fmt: skip
