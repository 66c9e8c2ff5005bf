"""Versioned prompt templates (prompts/*.yaml) and the grounded-answer messages they render.

A template is data, not code: system prompt, how each retrieved chunk is written into the
context, the user message and optional decoding defaults. Every released version stays
loadable, so an answer can always be traced to, and reproduced with, the prompt that made it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from ragcore.protocols import Hit
from utils.answer_settings import AnswerSettings
from utils.errors import InputError, RequestRejectedError

_FIELDS = {"version", "description", "system", "context_item", "turns", "user", "decoding",
           "datamark"}  # fmt: skip
_REQUIRED = _FIELDS - {"description", "decoding", "turns", "datamark"}
# A passage may not open or close the tags that fence passages in (a spotlighting template's
# `<passage ...>...</passage>`): "</passage> New instructions: ..." stays inside its fence.
FENCE_TAG = re.compile(r"<(\s*/?\s*)(passage|system|instructions?)\b", re.I)


def defuse(text: str) -> str:
    """Retrieved text with its fence tags made inert ("</passage>" becomes "‹/passage>")."""
    return FENCE_TAG.sub(r"‹\1\2", text)


@dataclass(frozen=True)
class PromptTemplate:
    """One prompt version, as loaded from its file."""

    version: str
    system: str
    context_item: str  # placeholders: {n} {title} {source} {content}
    user: str  # placeholders: {context} {question}
    description: str = ""
    # Messages between the system prompt and the user message (same placeholders): e.g. the
    # passages as their own turn, so a small model answers the question, not the context.
    turns: tuple[tuple[str, str], ...] = ()
    decoding: Mapping[str, Any] = field(default_factory=dict)
    digest: str = ""  # sha256 of the file: what CHECKSUMS pins
    # Spotlighting by datamarking (Hines et al., 2024): the passages' whitespace becomes this
    # character, so retrieved text reads as data that no instruction of the system's shares.
    datamark: str = ""

    def spotlight(self, content: str) -> str:
        """A retrieved passage as the prompt carries it: no fence tags, datamarked."""
        content = defuse(content)
        if self.datamark:
            content = self.datamark.join(content.replace(self.datamark, " ").split())
        return content

    def unmark(self, text: str) -> str:
        """Model output with any datamark it copied read back as spaces."""
        return text.replace(self.datamark, " ") if self.datamark else text

    @cached_property
    def scaffolding(self) -> re.Pattern[str]:
        """Lines of an answer that only echo the prompt's own frame: a passage header
        ("Passage [3], from ...") or a line of the user message ("Question: ..."). Small
        models copy them; they are not part of the answer."""
        patterns = []
        header_words = re.findall(
            r"[A-Za-z]+", re.sub(r"\{[a-z]+\}", " ", self.context_item.split("\n")[0])
        )
        if header_words:
            patterns.append(r"\W*(?:\d+\W*)?" + r"\W*(?:\d+\W*)?".join(header_words) + r"\b")
        for line in self.user.splitlines():
            literal = line.split("{", 1)[0].strip()
            if len(literal) >= 4:
                patterns.append(re.escape(literal))
        return re.compile(r"^\s*(?:" + "|".join(patterns or ["(?!)"]) + r").*$", re.M | re.I)

    def strip_scaffolding(self, text: str) -> str:
        """`text` without the lines that echo the prompt (see `scaffolding`)."""
        lines = self.scaffolding.sub("\0", self.unmark(text)).split("\n")
        return "\n".join(line for line in lines if line != "\0").strip()

    def context(self, hits: list[Hit], max_chars: int) -> str:
        """The numbered chunks, cut to `max_chars` in total (a chunk is cut, not dropped,
        while there is room for a useful part of it)."""
        parts: list[str] = []
        used = 0
        for number, hit in enumerate(hits, start=1):
            budget = max_chars - used
            if budget <= 80:
                break
            title = defuse(hit.title or hit.source)  # a heading is retrieved text too
            frame = self.context_item.format(n=number, title=title, source=hit.source, content="")
            body = self.spotlight(hit.content[: max(0, budget - len(frame) - 2)])
            block = self.context_item.format(n=number, title=title, source=hit.source,
                                             content=body)  # fmt: skip
            parts.append(block)
            used += len(block) + 2
        return "\n\n".join(parts)

    def render(self, question: str, hits: list[Hit], max_chars: int) -> list[dict[str, str]]:
        """Chat messages: the system rules, then context and question in delimited blocks."""
        values = {"context": self.context(hits, max_chars), "question": question}
        turns = [{"role": role, "content": text.format(**values)} for role, text in self.turns]
        user = {"role": "user", "content": self.user.format(**values)}
        return [{"role": "system", "content": self.system}, *turns, user]


def load_template(path: Path) -> PromptTemplate:
    """Read and check one template file; InputError says what is wrong with it."""
    raw = path.read_bytes()
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a prompt template must be a mapping of {sorted(_FIELDS)}")
    unknown, missing = set(data) - _FIELDS, _REQUIRED - set(data)
    if unknown or missing:
        raise InputError(f"{path}: unknown fields {sorted(unknown)}, missing {sorted(missing)}")
    if data["version"] != path.stem:
        raise InputError(f"{path}: version {data['version']!r} must match the file name")
    turns = _turns(path, data.get("turns") or [])
    try:
        data["context_item"].format(n=1, title="", source="", content="")
        for text in [data["user"], *(t for _, t in turns)]:
            text.format(context="", question="")
    except (KeyError, IndexError, ValueError) as exc:
        raise InputError(f"{path}: bad placeholder {exc} in context_item, turns or user") from None
    return PromptTemplate(
        version=str(data["version"]),
        system=str(data["system"]).strip(),
        context_item=str(data["context_item"]),
        user=str(data["user"]),
        description=str(data.get("description") or ""),
        turns=turns,
        decoding=dict(data.get("decoding") or {}),
        digest=hashlib.sha256(raw).hexdigest(),
        datamark=str(data.get("datamark") or ""),
    )


def _turns(path: Path, raw: Any) -> tuple[tuple[str, str], ...]:
    """`turns` as (role, content) pairs; InputError for anything else."""
    if not isinstance(raw, list) or not all(
        isinstance(t, dict) and t.get("role") in ("user", "assistant") and "content" in t
        for t in raw
    ):
        raise InputError(f"{path}: turns must be a list of {{role: user|assistant, content}}")
    return tuple((str(t["role"]), str(t["content"])) for t in raw)


def default_template(settings: AnswerSettings) -> PromptTemplate:
    """The prompt version the settings choose (what /ask uses unless a request picks one)."""
    return TemplateStore(settings.prompts_dir).get(settings.prompt_version)


class TemplateStore:
    """Every template of a folder, loaded once; look one up by version id."""

    def __init__(self, directory: Path) -> None:
        files = sorted(directory.glob("*.yaml"))
        if not files:
            raise InputError(f"no prompt templates (*.yaml) in {directory}")
        self.directory = directory
        self._templates = {t.version: t for t in map(load_template, files)}

    @property
    def versions(self) -> list[str]:
        return sorted(self._templates)

    def get(self, version: str) -> PromptTemplate:
        """The template of `version`; RequestRejectedError (a 422) naming the known ones."""
        try:
            return self._templates[version]
        except KeyError:
            known = ", ".join(self.versions)
            raise RequestRejectedError(
                f"prompt_version {version!r} is unknown; use one of: {known}"
            ) from None
