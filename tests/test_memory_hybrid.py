"""BM25 and reciprocal rank fusion (pure), and the hybrid search of a real on-disk Chroma collection."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from mmagent.config import MemoryConfig
from mmagent.errors import MemoryStoreError
from mmagent.memory import Document, open_memory
from mmagent.memory.bm25 import BM25Index, reciprocal_rank_fusion, terms

DOCS = {"a": "The Larkspur Bridge was designed by Clara Hesketh.", "b": "Bridges need paint every ten years.",
        "c": "The donkey eats carrots.", "d": "Carrots and apples are sold at the market."}


def test_terms_drop_function_words_and_fold_plurals():
    assert terms("What are the bridges and the cities of the Rovers?") == ["bridge", "city", "rover"]


def test_bm25_matches_the_textbook_formula_and_ranks_rare_words_higher():
    index = BM25Index(DOCS)
    hits = index.search("Who designed the bridge?", k=5)
    assert [h.id for h in hits] == ["a", "b"] and [h.rank for h in hits] == [1, 2]
    n, df = 4, {"designed": 1, "bridge": 2}
    idf = {t: math.log((n - f + 0.5) / (f + 0.5) + 1) for t, f in df.items()}
    length, avg = len(terms(DOCS["a"])), sum(len(terms(t)) for t in DOCS.values()) / n
    norm = 1.5 * (1 - 0.75 + 0.75 * length / avg)
    expected = sum(idf[t] * 2.5 / (1 + norm) for t in ("designed", "bridge"))
    assert hits[0].score == pytest.approx(expected)
    assert hits[0].coverage == pytest.approx(1.0) and 0 < hits[1].coverage < 0.5
    assert index.search("Mona Lisa", k=5) == []


def _reference_bm25(docs: dict[str, str], query: str, k: int) -> list[tuple[str, float, float]]:
    """Okapi BM25 scored chunk by chunk, straight from the formula: what the inverted index must return."""
    counts = {i: Counter(terms(t)) for i, t in docs.items()}
    avg = sum(sum(c.values()) for c in counts.values()) / len(docs)
    n = len(docs)
    df = Counter(t for c in counts.values() for t in c)
    idf = {t: max(0.0, math.log((n - f + 0.5) / (f + 0.5) + 1)) for t, f in df.items()}
    words = set(terms(query))
    weight = {t: idf.get(t, math.log((n - 0.5) / 1.5 + 1)) for t in words}
    scored = []
    for doc_id, c in counts.items():
        matched = [t for t in words if t in c]
        norm = 1.5 * (1 - 0.75 + 0.75 * sum(c.values()) / avg)
        score = sum(weight[t] * c[t] * 2.5 / (c[t] + norm) for t in matched)
        if score > 0:
            scored.append((doc_id, score, sum(weight[t] for t in matched) / sum(weight.values())))
    return sorted(scored, key=lambda s: (-s[1], s[0]))[:k]


def test_inverted_bm25_equals_the_formula_chunk_by_chunk_with_ties_at_the_cut():
    rng = random.Random(7)
    vocabulary = ["lamp", "bridge", "river", "carrot", "tower", "ferry", "cable", "stone"]
    docs = {f"c{i:03d}": " ".join(rng.choices(vocabulary, k=rng.randint(1, 9))) for i in range(300)}
    docs |= {f"dup{i}": "lamp river" for i in range(6)}  # identical chunks: equal scores, ordered by id
    index = BM25Index(docs)
    for query in ["lamp river", "ferry", "stone cable tower", "lamp zeppelin", "zeppelin", ""]:
        for k in (1, 3, 10, 500):
            got = [(h.id, h.score, h.coverage) for h in index.search(query, k)]
            want = _reference_bm25(docs, query, k)
            assert [g[0] for g in got] == [w[0] for w in want], (query, k)
            flat = [v for g in got for v in g[1:]]
            assert flat == pytest.approx([v for w in want for v in w[1:]]), (query, k)
    assert index.search("lamp", 0) == [] and BM25Index({}).search("lamp", 5) == []


def test_rrf_sums_reciprocal_ranks():
    fused = reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=60)
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61) and fused["a"] == pytest.approx(1 / 61)
    assert max(fused, key=fused.get) == "b"


def test_hybrid_search_on_chroma_keeps_cosine_and_rebuilds_after_adds(tmp_path):
    memory = open_memory(MemoryConfig(path=str(tmp_path / "store")), "hybrid-test")
    memory.add([Document(t, {"source": i, "kind": "text"}, id=i) for i, t in DOCS.items()])
    dense = {h.id: h.score for h in memory.search("Who designed the bridge?", k=4)}
    hits = memory.search("Who designed the bridge?", k=4, mode="hybrid")
    assert hits[0].id == "a" and hits[0].keyword_rank == 1
    assert all(h.score == pytest.approx(dense[h.id], abs=1e-4) for h in hits if h.id in dense)
    assert all(a.fused >= b.fused for a, b in zip(hits, hits[1:]))
    assert memory.search("zeppelin", k=2, mode="hybrid")[0].keyword_rank is None
    memory.add([Document("The zeppelin landed in Ormond.", {"source": "z", "kind": "text"}, id="z")])
    assert memory.search("zeppelin", k=2, mode="hybrid")[0].id == "z"  # the keyword index saw the add
    text_only = memory.search("carrots", k=4, mode="hybrid", where={"source": "c"})
    assert [h.id for h in text_only] == ["c"]
    with pytest.raises(MemoryStoreError, match="dense, hybrid"):
        memory.search("x", mode="bm25")
