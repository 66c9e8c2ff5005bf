"""Prompt token counts before generation, for token budgets: the generator's own tokenizer and
chat template when they load offline, else an upper bound (one token per UTF-8 byte)."""

from __future__ import annotations

from typing import Any

from utils.logs import get_logger

log = get_logger("tokens")
PER_MESSAGE_BOUND = 8  # role markers and separators the chat template adds to each message


def byte_bound(messages: list[dict[str, str]]) -> int:
    """Never fewer than the real count: a byte-level BPE token covers at least one byte."""
    return sum(len(str(m.get("content", "")).encode()) + PER_MESSAGE_BOUND for m in messages) + 8


class PromptTokenCounter:
    """Counts what the engine will count: `apply_chat_template` of the model's tokenizer,
    loaded from the local model directory on first use."""

    def __init__(self, model_source: str) -> None:
        self.model_source = model_source
        self._tokenizer: Any = None
        self._failed = False

    def __call__(self, messages: list[dict[str, str]]) -> int:
        tokenizer = self._load()
        if tokenizer is None:
            return byte_bound(messages)
        try:
            ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                tokenize=True)  # fmt: skip
        except Exception:  # content the template cannot render (e.g. OpenAI content parts)
            return byte_bound(messages)
        if hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return len(ids)

    def _load(self) -> Any:
        if self._tokenizer is None and not self._failed:
            try:
                from transformers import AutoTokenizer

                self._tokenizer = AutoTokenizer.from_pretrained(self.model_source,
                                                                local_files_only=True)  # fmt: skip
            except Exception as exc:  # no local tokenizer: the bound still never undercounts
                self._failed = True
                why = {"model": self.model_source, "error": repr(exc)[:200]}
                log.warning("prompt tokens bounded by bytes", extra=why)
        return self._tokenizer
