"""Keyword search beside the dense one: Okapi BM25 over a collection's chunks, and reciprocal rank fusion.

A small sentence embedder can place a question and the sentence answering it far apart when they share
only one key noun (measured in issue 14: cosine 0.16 against a 0.35 threshold, over four short documents,
so qa declined). BM25 scores exactly that shared rare word, so the two rankings fail differently, and
fusing them by rank (RRF, Cormack et al. 2009: ``sum 1 / (60 + rank)``) keeps what either finds with no
score calibration between them.

Our own ~40 lines instead of `rank-bm25`: the same formula (k1 = 1.5, b = 0.75, idf floored at 0 so a
term in most chunks adds nothing rather than subtracting), no extra dependency, and the index exposes
what the relevance rule needs (which query terms matched and their idf share). The index is inverted (per
term: the chunks holding it and how often), so a search touches only the postings of the query's words:
scoring every chunk in a Python loop made hybrid search grow with the collection (p95 883 ms at 100k
chunks, RESULTS.md). :class:`mmagent.memory.store.Memory` caches the index per collection and rebuilds it
when the collection's count changes or after its own add/delete.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mmagent.facts import FUNCTION_WORDS

RRF_K = 60
TIE = 1e-9  # BM25 scores closer than this are equal: they differ only by the order of a float sum
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
        import numpy as np

        self.ids = list(documents)
        postings: dict[str, tuple[list[int], list[int]]] = {}
        lengths = []
        for row, doc_id in enumerate(self.ids):
            counts = Counter(terms(documents[doc_id]))
            lengths.append(sum(counts.values()))
            for term, count in counts.items():
                rows, tfs = postings.setdefault(term, ([], []))
                rows.append(row)
                tfs.append(count)
        n = len(self.ids)
        avg = (sum(lengths) / n) if n else 0.0
        self.k1, self.b = k1, b
        # the length part of each chunk's denominator: fixed for the chunks the index was built from
        self.norm = k1 * (1 - b + b * np.asarray(lengths, dtype=np.float64) / (avg or 1.0))
        self.postings = {t: (np.asarray(rows, dtype=np.int64), np.asarray(tfs, dtype=np.float64))
                         for t, (rows, tfs) in postings.items()}
        self.idf = {t: max(0.0, math.log((n - len(rows) + 0.5) / (len(rows) + 0.5) + 1.0))
                    for t, (rows, _) in self.postings.items()}
        # a query word no chunk has weighs like one only a single chunk has: paraphrases ("looks after" for
        # "keeper") are common and should not sink the coverage of the word that did match
        self.unseen_idf = math.log((n - 0.5) / 1.5 + 1.0)

    def search(self, query: str, k: int) -> list[KeywordHit]:
        import numpy as np

        if k <= 0:
            return []
        words = sorted(set(terms(query)))
        weight = {t: self.idf.get(t, self.unseen_idf) for t in words}
        total = sum(weight.values())
        scores, matched = np.zeros(len(self.ids)), np.zeros(len(self.ids))
        for term in words:
            if term not in self.postings:
                continue
            rows, tfs = self.postings[term]  # each chunk once per term, so += on the rows is exact
            scores[rows] += weight[term] * tfs * (self.k1 + 1) / (tfs + self.norm[rows])
            matched[rows] += weight[term]
        found = np.flatnonzero(scores > 0)
        if k < len(found):  # keep the k best and every chunk tied with the k-th, then order those exactly
            kth = np.partition(scores[found], len(found) - k)[len(found) - k]
            found = found[scores[found] >= kth - TIE]
        # scores equal but for summation order (the same words, counts and length) tie: ordered by id
        best = sorted(found.tolist(), key=lambda row: (-round(scores[row] / TIE), self.ids[row]))[:k]
        return [KeywordHit(self.ids[row], float(scores[row]), rank, float(matched[row] / total))
                for rank, row in enumerate(best, start=1)]


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> dict[str, float]:
    """Fused score of every id in `rankings` (each best first): the sum over rankings of 1 / (k + rank)."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            fused[doc] = fused.get(doc, 0.0) + 1.0 / (k + rank)
    return fused
