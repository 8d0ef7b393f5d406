"""Why an answer was wrong, from what the person said instead: a retrieval miss (the passages the
model was given did not hold the right answer: a gap in the documents, or in search) or a generation
miss (they held it and the answer missed it: something training can fix).

The right answer's key content is what the correction (or a 👎's comment) says that neither the
question nor the bot's answer said: its numbers where it has any, otherwise its content words. When
at least half of that is in the passages the model read, the answer was there to be found.

    classify("It is 26 days.", question="How much leave?", answer="20 days.", context=passages)
    # "generation" when the passages say 26, "retrieval" when they do not, None with nothing to go on
"""

from __future__ import annotations

import re
from collections.abc import Sequence

RETRIEVAL, GENERATION = "retrieval", "generation"
KINDS = (RETRIEVAL, GENERATION)
FOUND_SHARE = 0.5
_WORD = re.compile(r"[a-z0-9]+(?:[.,'][a-z0-9]+)*")
_NUMBER = re.compile(r"\d")
_STOPWORDS = """a about above after again all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has
have having he her here hers him his how i if in into is it its itself just me more most my no nor not
now of off on once only or other our ours out over own same she should so some such than that the their
theirs them then there these they this those through to too under until up very was we were what when
where which while who whom why will with would you your yours yes get gets got one per every many much
may might must shall said says say see use used using like well day days wrong right correct incorrect
answer answers bad good true false outdated nonsense please thanks thank actually"""
STOPWORDS = frozenset(_STOPWORDS.split())


def terms(text: str) -> list[str]:
    return [
        w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and (len(w) > 2 or _NUMBER.search(w))
    ]


def key_terms(said: str, *, question: str, answer: str) -> list[str]:
    """What `said` adds to the question and the bot's answer: its numbers, or else its words."""
    known = set(terms(question)) | set(terms(answer))
    new = list(dict.fromkeys(t for t in terms(said) if t not in known))
    numbers = [t for t in new if _NUMBER.search(t)]
    return numbers or new


def classify(said: str, *, question: str, answer: str, context: str | None) -> str | None:
    """RETRIEVAL, GENERATION, or None when `said` adds nothing to go on."""
    key = key_terms(said, question=question, answer=answer)
    if not key:
        return None
    if not context:
        return RETRIEVAL  # nothing was retrieved at all
    found = set(terms(context))
    share = sum(1 for t in key if t in found) / len(key)
    return GENERATION if share >= FOUND_SHARE else RETRIEVAL


DOCUMENTS = "\n\nDocuments:\n"  # where `bot.prompts.build_messages` puts the passages
NO_DOCUMENTS = "(no documents matched)"


def context_of(prompt: Sequence[dict[str, str]] | None) -> str | None:
    """The passages the model was given, from its prompt's system message (None: none were)."""
    system = next((m.get("content", "") for m in prompt or () if m.get("role") == "system"), "")
    _, found, passages = system.partition(DOCUMENTS)
    passages = (passages if found else system).strip()
    return None if not passages or passages == NO_DOCUMENTS else passages
