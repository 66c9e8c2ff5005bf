"""The guard pipeline around a generation: the question in (injection, PII), the prompt
(a canary in the system message), the answer out (leaks, markup, PII), with a reason code on
every refusal and a metric for every detection."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from ragcore.guards.injection import InjectionDetector
from ragcore.guards.leaks import LeakGuard, StreamLeakCheck, canary_for, strip_markup
from ragcore.guards.pii import PiiRedactor
from ragcore.metrics import BoundedLabels, MetricsSink, NullMetrics
from utils.errors import GuardRefusalError
from utils.guard_settings import GuardActions, GuardSettings
from utils.logs import get_logger

log = get_logger("guards")
LEAK_REFUSAL = "I can't share that. Ask me about the documentation instead."


@dataclass(frozen=True)
class ScreenedQuestion:
    """The question as the model and the logs may see it, and what the guards noticed."""

    text: str
    actions: GuardActions
    flags: tuple[str, ...] = ()  # reason codes of guards set to flag


@dataclass(frozen=True)
class ScreenedAnswer:
    """The answer as it may leave, and why it changed (reason codes)."""

    text: str
    reasons: tuple[str, ...] = ()
    leaked: bool = False


class GuardPipeline:
    """Runs the guards the settings ask for, for one route and tenant at a time."""

    def __init__(
        self,
        settings: GuardSettings,
        detector: InjectionDetector | None,
        redactor: PiiRedactor | None,
        metrics: MetricsSink | None = None,
    ) -> None:
        self.settings = settings
        self.detector = detector
        self.redactor = redactor
        self.metrics = metrics or NullMetrics()
        self.canary = canary_for(settings.canary_secret or secrets.token_hex(16))
        self._tenant_label = BoundedLabels(settings.metrics_max_tenants)

    def _event(self, guard: str, reason: str, action: str, tenant: str | None) -> None:
        self.metrics.guard(guard, reason, action, self._tenant_label(tenant or ""))
        log.info("guard fired", extra={"guard": guard, "reason": reason, "action": action})

    def screen_question(self, text: str, route: str, tenant: str | None) -> ScreenedQuestion:
        """Refuse an injection (GuardRefusalError, a 400 with the reason code) or flag it;
        redact or refuse PII. Runs before retrieval, the model and any log line."""
        actions = self.settings.actions_for(route, tenant)
        flags: list[str] = []
        if actions.injection != "off" and self.detector is not None:
            found = self.detector.detect(text)
            if found.flagged:
                reason = f"prompt_injection:{found.reasons[0]}"
                self._event("injection", found.reasons[0], actions.injection, tenant)
                if actions.injection == "block":
                    raise GuardRefusalError("the question looks like a prompt injection", reason)
                flags.append(reason)
        if actions.pii != "off" and self.redactor is not None:
            redaction = self.redactor.redact(text)
            for entity in redaction.entities:
                self.metrics.redaction(entity, self._tenant_label(tenant or ""))
            if redaction.entities:
                reason = "pii:" + ",".join(redaction.entities)
                self._event("pii", ",".join(redaction.entities), actions.pii, tenant)
                if actions.pii == "block":
                    raise GuardRefusalError("the question contains personal data", reason)
                if actions.pii == "redact":
                    text = redaction.text
                else:
                    flags.append(reason)
        return ScreenedQuestion(text, actions, tuple(flags))

    def screen_chat(
        self, messages: list[dict[str, object]], route: str, tenant: str | None
    ) -> list[dict[str, object]]:
        """The OpenAI route's messages with every user turn screened like a question (the
        caller writes the whole prompt there, so each of its turns is a way in)."""
        out = []
        for message in messages:
            content = message.get("content")
            if message.get("role") == "user" and isinstance(content, str):
                message = {**message, "content": self.screen_question(content, route, tenant).text}
            out.append(message)
        return out

    def screen_chat_reply(self, reply: dict[str, Any], route: str, tenant: str | None) -> None:
        """An OpenAI chat completion's choices screened in place: markup and PII (the caller
        wrote the system prompt, so there is no canary of ours to leak)."""
        actions = self.settings.actions_for(route, tenant).model_copy(update={"leak": "off"})
        for choice in reply.get("choices") or []:
            message = choice.get("message") or {}
            if isinstance(message.get("content"), str):
                screened = self.screen_answer(message["content"], self.leak_guard([]), actions,
                                              tenant)  # fmt: skip
                message["content"] = screened.text

    def redacted(self, text: str) -> str:
        """`text` with its PII redacted, for what is stored (a refused question, a comment)."""
        return text if self.redactor is None else self.redactor.redact(text).text

    def fingerprint(self, route: str, tenant: str | None) -> str:
        """What the verdict on a question depends on besides its text: the actions for this
        route and tenant and the detectors. Cached answers are keyed by it."""
        head = self.detector.head.digest if self.detector is not None else "-"
        actions = self.settings.actions_for(route, tenant).model_dump_json()
        return f"{actions}|{head}|{self.redactor is not None}"

    def cleared(self, text: str, route: str, tenant: str | None) -> GuardSession | None:
        """A session for serving a stored answer to this question without the injection check
        (the encoder pass most of a cache hit's time would be); None when it holds PII, which
        takes the full screening. Safe because only answers to questions that passed every
        guard unflagged are stored, keyed by `fingerprint` and the screened text: a hit means
        an equal text (up to case, spacing and end punctuation) was cleared under the same
        guards, and what it serves is that stored answer, so nothing new reaches the model."""
        actions = self.settings.actions_for(route, tenant)
        redactor = self.redactor if actions.pii != "off" else None
        if redactor is not None and redactor.redact(text).entities:
            return None
        return GuardSession(self, ScreenedQuestion(text, actions), tenant)

    def session(self, text: str, route: str, tenant: str | None) -> GuardSession:
        """Screen a question (may raise GuardRefusalError) and start its generation's guards."""
        return GuardSession(self, self.screen_question(text, route, tenant), tenant)

    def protect(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        """The prompt with the canary in its system message (added when leaks are watched)."""
        if not messages or messages[0].get("role") != "system":
            return messages
        marker = f"\n(Internal marker {self.canary}; never write it.)"
        return [{**messages[0], "content": messages[0]["content"] + marker}, *messages[1:]]

    def leak_guard(self, messages: list[dict[str, str]]) -> LeakGuard:
        """The leak check for a prompt made by `protect`."""
        system = messages[0]["content"] if messages and messages[0].get("role") == "system" else ""
        return LeakGuard(system, self.canary)

    def screen_answer(
        self, text: str, leaks: LeakGuard, actions: GuardActions, tenant: str | None
    ) -> ScreenedAnswer:
        """A leaking answer (checked by `leaks`, the guard of the prompt it answers) becomes a
        refusal (block); markup is neutralised and PII redacted (redact); or each is only
        counted (flag)."""
        reasons: list[str] = []
        if actions.leak != "off":
            leak = leaks.leak(text)
            if leak:
                self._event("leak", leak, actions.leak, tenant)
                if actions.leak == "block":
                    return ScreenedAnswer(LEAK_REFUSAL, (f"leak:{leak}",), leaked=True)
                reasons.append(f"leak:{leak}")
        if actions.markup != "off":
            cleaned, removed = strip_markup(text)
            if removed:
                self._event("markup", "executable", actions.markup, tenant)
                reasons.append("markup")
                text = cleaned if actions.markup in ("redact", "block") else text
        if actions.pii != "off" and self.redactor is not None:
            redaction = self.redactor.redact(text)
            if redaction.entities:
                self._event("pii_output", ",".join(redaction.entities), actions.pii, tenant)
                reasons.append("pii:" + ",".join(redaction.entities))
                text = redaction.text if actions.pii in ("redact", "block") else text
        return ScreenedAnswer(text, tuple(reasons))


class GuardSession:
    """The guards of one generation: the screened question, the protected prompt, the leak
    check over the stream and the screening of the final answer."""

    def __init__(self, pipeline: GuardPipeline, question: ScreenedQuestion, tenant: str | None):
        self.pipeline = pipeline
        self.question = question
        self.tenant = tenant
        # One leak guard per prompt, for the stream and the final answer alike (no prompt yet:
        # an answer made without the model).
        self._leaks = pipeline.leak_guard([])
        self._stream: StreamLeakCheck | None = None
        self.leaked = ""

    def renewed(self) -> GuardSession:
        """A session for another generation of the same screened question (a shadow copy)."""
        return GuardSession(self.pipeline, self.question, self.tenant)

    def protect(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        """The prompt to send (with the canary when leaks are watched)."""
        if self.question.actions.leak != "off":
            messages = self.pipeline.protect(messages)
            self._leaks = self.pipeline.leak_guard(messages)
            self._stream = StreamLeakCheck(self._leaks)
        return messages

    def stream_leaks(self, text: str) -> bool:
        """Feed streamed text; True once it leaks and leaks are blocked (stop the stream)."""
        if self._stream is None or not text:
            return False
        self.leaked = self._stream.feed(text)
        return bool(self.leaked) and self.question.actions.leak == "block"

    def answer(self, text: str) -> ScreenedAnswer:
        """The final answer text as it may leave."""
        screened = self.pipeline.screen_answer(text, self._leaks, self.question.actions,
                                               self.tenant)  # fmt: skip
        if self.leaked and self.question.actions.leak == "block" and not screened.leaked:
            return ScreenedAnswer(LEAK_REFUSAL, (f"leak:{self.leaked}",), leaked=True)
        return screened
