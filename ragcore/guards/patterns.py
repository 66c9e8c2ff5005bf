"""Known families of prompt injection and jailbreak, as patterns over normalized text
(normalize.py: casefolded, de-obfuscated), in English and German.

Each family is a reason code. The patterns need an attack's grammar, not a single word: a
documentation question may say "ignore", "act as" or "system prompt" innocently."""

from __future__ import annotations

import re

from ragcore.guards.normalize import Normalized

_PREVIOUS = (r"(?:all |any |the |your |my |these |those |everything )*(?:previous|prior|preceding|"
             r"above|earlier|former|initial|original|foregoing|old|given|provided)?")  # fmt: skip
_RULES = (r"(?:instructions?|rules|orders|directions|guidelines|prompts?|tasks?|assignments?|"
          r"context|information|commands?)")  # fmt: skip
_VORHER = (r"(?:alle[ns]?|die|deine|ihre|sämtliche|jegliche)?\s*(?:vorherigen|vorigen|bisherigen|"
           r"obigen|vorangegangenen|vorangehenden|vorhergehenden|früheren|gegebenen)?")  # fmt: skip
_ANWEISUNG = (
    r"(?:anweisungen|instruktionen|befehle|regeln|aufgaben|aufträge|informationen|vorgaben)"
)

FAMILIES: dict[str, list[str]] = {
    "instruction_override": [
        rf"\b(?:ignore|disregard|forget|skip|drop|override|overwrite)\s+{_PREVIOUS}\s*{_RULES}",
        r"\b(?:forget|ignore|disregard)\s+(?:about\s+)?(?:everything|all|anything)\b",
        # "Ignore the above and say ...": the clause ends there; "ignore the above warning" goes on.
        r"\b(?:ignore|disregard|forget)\s+(?:all\s+)?(?:of\s+)?the\s+(?:above|previous)\s*(?:and\b|[,.;:!]|$)",
        r"\bnew\s+(?:tasks?|instructions?|assignments?)\s+(?:follow|are|is)\b",
        r"\b(?:start|begin)\s+(?:over|again)\s+with\s+a\s+new\s+(?:task|assignment)",
        r"\bdo\s+not\s+(?:look\s+(?:in|at)|use|follow)\s+the\s+(?:documents|articles|context|instructions)",
        r"\bnot\s+(?:according\s+to|by)\s+the\s+(?:provided\s+)?(?:documents|articles|context)\b",
        rf"\b(?:ignoriere|ignorieren\s+sie|vergiss|vergessen\s+sie|missachte)\s+{_VORHER}\s*{_ANWEISUNG}",
        r"\b(?:vergiss|vergessen\s+sie|ignoriere)\s+(?:alles|das\s+alles|alles\s+(?:davor|bisherige|gesagte|vorherige))",
        rf"\babweichend\s+(?:zu|von)\s+{_VORHER}\s*{_ANWEISUNG}",
        r"\b(?:lassen\s+sie|lass)\s+alle\s+(?:vorherigen\s+)?informationen\s+hinter\s+sich",
        r"\bnun\s+folgen\s+(?:weitere|neue)\s+(?:aufgaben|anweisungen)",
        r"\b(?:oubliez|ignorez|olvida|ignora|zaboravi)\s+(?:toutes?|todas?|tutte|sve)\b",
    ],
    "role_play": [
        # "You are now ready to start training!" is documentation, not a new persona.
        r"\byou\s+are\s+(?:now|no\s+longer)\b(?!\s+(?:ready|able|set|done|connected|running|"
        r"familiar|finished|all\s+set|in\s+the|on\s+the|going\s+to\s+(?:learn|see|build|use)))",
        r"\b(?:now\s+)?you\s+are\s+(?:dan|an?\s+(?:unrestricted|unfiltered|evil|jailbroken))\b",
        r"\bdo\s+anything\s+now\b|\bjailbr(?:eak|oken)\b",
        # DAN's "Developer Mode enabled"; "Enable developer mode on Windows" is documentation.
        r"\bdeveloper\s+mode\s+(?:enabled|activated|output)\b",
        r"\b(?:pretend|imagine)\s+(?:to\s+be|that\s+you\s+are|you\s+are|you're)\b",
        r"\bi\s+want\s+you\s+to\s+act\s+as\b|\bact\s+as\s+(?:if\s+you|an?\s+(?:unrestricted|evil))",
        r"\b(?:role-?playing|roleplay)\s+as\b|\brespond\s+as\s+(?:such|a)\b",
        r"\b(?:du\s+bist|sie\s+sind)\s+(?:jetzt|nun|ab\s+sofort)\b|\bnun\s+bist\s+du\b",
        r"\b(?:tu|tun\s+sie)\s+so,?\s+als\b|\bstell\s+dir\s+vor,?\s+du\s+(?:bist|wärst)\b",
        r"\bich\s+möchte,?\s+dass\s+(?:sie|du)\s+als\b",
        r"\bim\s+stil(?:e)?\s+(?:eines|einer)\b|\bantworte\s+im\s+stil\b",
    ],
    "prompt_extraction": [
        r"\b(?:show|reveal|print|repeat|tell|give|output|display|spell|write)\s+(?:me\s+)?(?:all\s+)?"
        r"(?:of\s+)?(?:your|the)\s+(?:system\s+|initial\s+|original\s+|hidden\s+)?(?:prompt|instructions|rules)(?:\s+texts?)?\b",
        r"\bwhat\s+(?:are|were)\s+your\s+(?:instructions|rules|initial\s+prompt)",
        r"\b(?:print|drucken\s+sie|gib|zeige?n?)\s+(?:mir\s+)?(?:die|den|deine|ihre)?\s*(?:obige|obigen)?\s*"
        r"(?:eingabeaufforderung|systemprompt|system-prompt|anweisungen|prompt-?texte?)",
        r"\bsystem\s+prompt\b.{0,40}\b(?:verbatim|word\s+for\s+word|above)\b",
    ],
    "delimiter_injection": [
        r"<\|?(?:im_start|im_end|system|endoftext)\|?>",
        r"\[/?inst\]|<</?sys>>|^\s*#{2,}\s*(?:system|instruction)s?\b",
        r"={4,}\s*end\b|\bend\s+of\s+(?:system\s+)?(?:prompt|instructions)\b",
        r"```\s*system\b|\bsystem\s*:\s*you\s+are\b",
    ],
}
COMPILED = {family: [re.compile(p, re.I | re.M) for p in patterns]
            for family, patterns in FAMILIES.items()}  # fmt: skip
# The same patterns without word breaks, for letter runs that lost them ("ignoreprevious...").
# Only runs are read this way: in ordinary text "skiptasks" could be an identifier.
SQUEEZED = {family: [re.compile(re.sub(r"\\s[+*]?|\\b| ", "", p), re.I) for p in patterns]
            for family, patterns in FAMILIES.items()}  # fmt: skip


def match_families(text: Normalized) -> list[str]:
    """The families whose patterns match any view of the normalized text, or its runs."""
    return [family for family in FAMILIES
            if any(p.search(view) for p in COMPILED[family] for view in text.views)
            or any(p.search(run) for p in SQUEEZED[family] for run in text.runs)]  # fmt: skip
