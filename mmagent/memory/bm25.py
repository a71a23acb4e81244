"""Keyword search beside the dense one: Okapi BM25 over a collection's chunks, and reciprocal rank fusion.

A small sentence embedder can place a question and the sentence answering it far apart when they share
only one key noun (measured in issue 14: cosine 0.16 against a 0.35 threshold, over four short documents,
so qa declined). BM25 scores exactly that shared rare word, so the two rankings fail differently, and
fusing them by rank (RRF, Cormack et al. 2009: ``sum 1 / (60 + rank)``) keeps what either finds with no
score calibration between them.

Our own ~40 lines instead of `rank-bm25`: the same formula (k1 = 1.5, b = 0.75, idf floored at 0 so a
term in most chunks adds nothing rather than subtracting), no extra dependency, and the index exposes
what the relevance rule needs (which query terms matched and their idf share). Building it over 10,000
chunks takes well under a second; :class:`mmagent.memory.store.Memory` caches it per collection and
rebuilds it when the collection's count changes or after its own add/delete.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mmagent.facts import FUNCTION_WORDS

RRF_K = 60
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
STOPWORDS = FUNCTION_WORDS  # they match everywhere and would let any question "share a word" with any passage


def terms(text: str) -> list[str]:
    """Lower-cased content words with a light plural fold ("bridges" → "bridge", "ies" → "y")."""
    out = []
    for word in _WORD.findall(text.lower()):
        if word in STOPWORDS:
            continue
        if len(word) > 4 and word.endswith("ies"):
            word = word[:-3] + "y"
        elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
            word = word[:-1]
        out.append(word)
    return out


@dataclass(frozen=True)
class KeywordHit:
    """One chunk's BM25 result: `score`, its `rank` (1-based) and the idf share of the query it matched."""

    id: str
    score: float
    rank: int
    coverage: float  # sum of idf of matched query terms / sum of idf of all query terms, in [0, 1]


class BM25Index:
    """Okapi BM25 over `{id: text}`; `search` returns the matching chunks, best first."""

    def __init__(self, documents: Mapping[str, str], k1: float = 1.5, b: float = 0.75) -> None:
        self.ids = list(documents)
        self.counts = [Counter(terms(documents[i])) for i in self.ids]
        self.lengths = [sum(c.values()) for c in self.counts]
        self.avg = (sum(self.lengths) / len(self.lengths)) if self.lengths else 0.0
        df = Counter(t for c in self.counts for t in c)
        n = len(self.ids)
        self.idf = {t: max(0.0, math.log((n - f + 0.5) / (f + 0.5) + 1.0)) for t, f in df.items()}
        # a query word no chunk has weighs like one only a single chunk has: paraphrases ("looks after" for
        # "keeper") are common and should not sink the coverage of the word that did match
        self.unseen_idf = math.log((n - 0.5) / 1.5 + 1.0)
        self.k1, self.b = k1, b

    def search(self, query: str, k: int) -> list[KeywordHit]:
        words = set(terms(query))
        weight = {t: self.idf.get(t, self.unseen_idf) for t in words}
        total = sum(weight.values())
        scored = []
        for doc, counts, length in zip(self.ids, self.counts, self.lengths):
            matched = [t for t in words if t in counts]
            if not matched:
                continue
            norm = self.k1 * (1 - self.b + self.b * length / (self.avg or 1.0))
            score = sum(weight[t] * counts[t] * (self.k1 + 1) / (counts[t] + norm) for t in matched)
            if score > 0:
                scored.append((score, doc, sum(weight[t] for t in matched) / total))
        scored.sort(key=lambda s: (-s[0], s[1]))
        return [KeywordHit(d, s, r, c) for r, (s, d, c) in enumerate(scored[:k], start=1)]


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> dict[str, float]:
    """Fused score of every id in `rankings` (each best first): the sum over rankings of 1 / (k + rank)."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            fused[doc] = fused.get(doc, 0.0) + 1.0 / (k + rank)
    return fused
