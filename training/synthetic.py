"""A small synthetic language with structure a tiny model can learn.

Every document has a latent *topic* that sets which nouns and adjectives it favours
(Zipf-distributed within the topic), and is a sequence of sentences from a tiny
grammar with number agreement:

    S   -> NP_n VP_n "."            n ∈ {singular, plural}
    NP  -> Det_n (Adj) Noun_n (PP)
    VP  -> Verb_n NP | Verb_n Adv
    PP  -> Prep NP

plus occasional counting runs ("one two three four") and list sentences. A model
learns, in order: the unigram distribution, the bigram structure (Det Adj Noun),
agreement across a phrase, and the document's topic, so the loss keeps falling with
more parameters and more tokens -- the shape a scaling sweep needs. All randomness
comes from ``random.Random(seed)``: the same (n_docs, seed) gives the same corpus.
"""

from __future__ import annotations

import random

_SYLLABLES = ("ka", "lo", "mi", "ren", "tu", "sa", "vel", "dor", "pim", "qua", "zo", "fen", "gri", "bel", "nu", "tas")
_NUMBERS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _words(rng: random.Random, n: int, syllables: tuple[int, int]) -> list[str]:
    out: set[str] = set()
    while len(out) < n:
        out.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(*syllables))))
    return sorted(out)


class _Lexicon:
    """Word classes of the language, drawn once from a fixed seed (the language itself)."""

    def __init__(self, n_topics: int = 8) -> None:
        rng = random.Random(1234)
        self.nouns = _words(rng, 120, (1, 3))
        self.adjectives = _words(rng, 40, (2, 3))
        self.verbs = _words(rng, 40, (1, 2))
        self.adverbs = [w + "ly" for w in _words(rng, 15, (2, 2))]
        self.preps = ["in", "on", "near", "under", "with"]
        # each topic is a permutation of the nouns/adjectives: its Zipf head differs
        self.topics = [(rng.sample(self.nouns, len(self.nouns)), rng.sample(self.adjectives, len(self.adjectives)))
                       for _ in range(n_topics)]


_LEXICON = _Lexicon()


def _zipf(rng: random.Random, items: list[str], s: float = 1.1) -> str:
    weights = [1.0 / (k + 1) ** s for k in range(len(items))]
    return rng.choices(items, weights)[0]


def _noun_phrase(rng: random.Random, topic: int, plural: bool, depth: int = 0) -> list[str]:
    nouns, adjectives = _LEXICON.topics[topic]
    det = rng.choice(("these", "those", "many") if plural else ("the", "a", "this"))
    words = [det]
    if rng.random() < 0.4:
        words.append(_zipf(rng, adjectives))
    noun = _zipf(rng, nouns)
    words.append(noun + "s" if plural else noun)
    if depth == 0 and rng.random() < 0.25:
        words += [rng.choice(_LEXICON.preps), *_noun_phrase(rng, topic, rng.random() < 0.5, depth + 1)]
    return words


def _sentence(rng: random.Random, topic: int) -> str:
    r = rng.random()
    if r < 0.08:
        start = rng.randrange(len(_NUMBERS) - 3)
        return " ".join(_NUMBERS[start:start + rng.randint(3, len(_NUMBERS) - start)]) + "."
    plural = rng.random() < 0.5
    words = _noun_phrase(rng, topic, plural)
    verb = rng.choice(_LEXICON.verbs)
    words.append(verb if plural else verb + "s")  # agreement: "the dog runs", "these dogs run"
    if rng.random() < 0.7:
        words += _noun_phrase(rng, topic, rng.random() < 0.5)
    else:
        words.append(rng.choice(_LEXICON.adverbs))
    text = " ".join(words) + "."
    return text[0].upper() + text[1:]


def synthetic_corpus(n_docs: int, seed: int = 0) -> list[str]:
    """``n_docs`` documents of 3-12 sentences each (about 60 words per document on average)."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        topic = rng.randrange(len(_LEXICON.topics))
        docs.append(" ".join(_sentence(rng, topic) for _ in range(rng.randint(3, 12))))
    return docs
