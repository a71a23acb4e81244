"""Vector memory benchmark: ingest throughput (chunks/s) and query latency (p50/p95) at 10k chunks.

Synthetic chunks (seeded random sentences of ~`--words` words, about the size ingest cuts) go through
the real path: `Memory.add` (embedding with the packaged MiniLM + Chroma on disk), then `Memory.search`
for random queries, with and without a metadata filter. Run on an idle machine:

    nice -n 10 python benchmarks/memory_bench.py --chunks 10000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

VOCAB = [
    "invoice",
    "revenue",
    "customer",
    "shipment",
    "delay",
    "refund",
    "policy",
    "contract",
    "meeting",
    "agenda",
    "budget",
    "forecast",
    "engine",
    "rocket",
    "orbit",
    "volcano",
    "river",
    "mountain",
    "forest",
    "garden",
    "kitchen",
    "recipe",
    "coffee",
    "bread",
    "oven",
    "cat",
    "dog",
    "photo",
    "camera",
    "lens",
    "battery",
    "charger",
    "screen",
    "keyboard",
    "network",
    "server",
    "database",
    "backup",
    "storage",
    "cloud",
    "report",
    "page",
    "chapter",
    "summary",
    "question",
    "answer",
    "lecture",
    "student",
    "teacher",
    "school",
    "hospital",
    "doctor",
    "patient",
    "medicine",
    "weather",
    "rain",
    "snow",
    "wind",
    "summer",
    "winter",
    "train",
    "station",
    "ticket",
    "airport",
    "flight",
    "hotel",
]
GLUE = [
    "the",
    "a",
    "of",
    "to",
    "and",
    "in",
    "on",
    "for",
    "with",
    "about",
    "from",
    "after",
    "before",
    "during",
    "while",
    "is",
    "was",
    "will",
    "can",
]


def sentence(rng: random.Random, words: int) -> str:
    out = [rng.choice(VOCAB) if i % 2 == 0 else rng.choice(GLUE) for i in range(words)]
    return " ".join(out).capitalize() + "."


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--words", type=int, default=80, help="words per synthetic chunk")
    parser.add_argument("--batch", type=int, default=500, help="documents per Memory.add call")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--path", type=Path, default=None, help="store directory (default: a temporary one)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    import torch

    from mmagent.config import MemoryConfig
    from mmagent.memory import Document, open_memory
    from mmagent.memory.embedder import get_embedder

    rng = random.Random(0)
    tmp = tempfile.TemporaryDirectory(prefix="memory-bench-")
    store = args.path or Path(tmp.name)
    started = time.perf_counter()
    embedder = get_embedder("default")
    _ = embedder.pin  # load the model and hash its weights outside the timed ingest
    load_s = time.perf_counter() - started
    memory = open_memory(MemoryConfig(path=str(store)), "bench")
    docs = [
        Document(
            sentence(rng, args.words),
            {"source": f"doc{i // 20}.txt", "kind": "text", "chunk": i % 20, "n": i},
        )
        for i in range(args.chunks)
    ]
    tokens = [len(embedder.tokenizer(d.text, add_special_tokens=False)["input_ids"]) for d in docs[:200]]

    started, cpu_started = time.perf_counter(), time.process_time()
    for i in range(0, len(docs), args.batch):
        memory.add(docs[i : i + args.batch])
        print(f"\radded {min(i + args.batch, len(docs))}/{len(docs)}", end="", file=sys.stderr, flush=True)
    ingest_s = time.perf_counter() - started
    ingest_cpu_s = time.process_time() - cpu_started  # all threads of this process; robust to other load
    print(file=sys.stderr)
    assert memory.count() == args.chunks

    sample = [d.text for d in docs[:500]]
    started = time.perf_counter()
    embedder.embed(sample)
    embed_rate = len(sample) / (time.perf_counter() - started)

    queries = [sentence(rng, 8) for _ in range(args.queries)]
    memory.search(queries[0], k=args.k)  # warm-up
    plain, filtered = [], []
    cpu_started = time.process_time()
    for q in queries:
        t = time.perf_counter()
        memory.search(q, k=args.k)
        plain.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        memory.search(q, k=args.k, where={"chunk": {"$lt": 5}})
        filtered.append((time.perf_counter() - t) * 1000)

    query_cpu_ms = (time.process_time() - cpu_started) * 1000 / (2 * len(queries))
    results = {
        "chunks": args.chunks,
        "tokens_per_chunk_mean": round(statistics.mean(tokens), 1),
        "embedder_load_s": round(load_s, 2),
        "ingest_s": round(ingest_s, 1),
        "ingest_chunks_per_s": round(args.chunks / ingest_s, 1),
        "ingest_cpu_s": round(ingest_cpu_s, 1),
        "embed_only_chunks_per_s": round(embed_rate, 1),
        "query_ms_p50": round(statistics.median(plain), 1),
        "query_ms_p95": round(percentile(plain, 0.95), 1),
        "query_where_ms_p50": round(statistics.median(filtered), 1),
        "query_where_ms_p95": round(percentile(filtered, 0.95), 1),
        "query_cpu_ms_mean": round(query_cpu_ms, 1),
        "store_mb": round(sum(p.stat().st_size for p in store.rglob("*") if p.is_file()) / 1e6, 1),
        "torch_threads": torch.get_num_threads(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),  # other work on the machine skews all of this
        "machine": f"{platform.machine()}, {platform.python_version()}",
    }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for key, value in results.items():
            print(f"{key:28s} {value}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
