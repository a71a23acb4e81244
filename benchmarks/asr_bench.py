"""ASR benchmark: word error rate and real-time factor on real speech, and a 10-minute file streamed
with bounded memory. Uses the embedded Whisper (tiny.en) through mmagent's Transcriber.

    python benchmarks/asr_bench.py            # Markdown
    python benchmarks/asr_bench.py --json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JFK = Path(__file__).resolve().parents[1] / "tests" / "data" / "jfk.flac"
JFK_TEXT = ("And so my fellow Americans, ask not what your country can do for you, "
            "ask what you can do for your country.")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _long_file(jfk: Path, out: Path, minutes: float) -> Path:
    """jfk.flac, then silence, repeated up to `minutes` (sox): speech every ~30 s over a long file."""
    piece = out / "piece.wav"
    subprocess.run(["sox", str(jfk), "-r", "16000", "-c", "1", str(piece), "pad", "0", "19"], check=True)
    repeats = int(minutes * 60 // 30)
    long = out / "long.wav"
    subprocess.run(["sox", *[str(piece)] * repeats, str(long)], check=True)
    return long


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", type=Path, default=JFK, help="speech file (default: tests/data/jfk.flac)")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the long-file test")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from mmagent.asr import Transcriber
    from mmagent.config import AsrConfig
    from mmagent.evals.metrics.speech import score_speech

    started = time.perf_counter()
    asr = Transcriber(AsrConfig())
    asr.load()
    load_s = time.perf_counter() - started
    asr.transcribe(args.audio, progress=False)  # warm-up
    started = time.perf_counter()
    short = asr.transcribe(args.audio, progress=False)
    short_s = time.perf_counter() - started
    wer = score_speech({"jfk": [JFK_TEXT]}, {"jfk": short.text}).metrics()["wer"]
    rss_short = _peak_rss_mb()

    with tempfile.TemporaryDirectory() as tmp:
        long = _long_file(args.audio, Path(tmp), args.minutes)
        started = time.perf_counter()
        stream = asr.stream(long, progress=False)
        segments = sum(1 for _ in stream)
        long_s = time.perf_counter() - started
        long_duration = stream.duration
    results = {
        "model": asr.config.model,
        "load_s": round(load_s, 2),
        "jfk_seconds": round(short.duration, 1),
        "jfk_wer": round(wer, 4),
        "jfk_rtf": round(short_s / short.duration, 3),
        "long_seconds": round(long_duration, 1),
        "long_segments": segments,
        "long_wall_s": round(long_s, 1),
        "long_rtf": round(long_s / long_duration, 3),
        "peak_rss_mb_after_short": round(rss_short),
        "peak_rss_mb_after_long": round(_peak_rss_mb()),
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print("| model | jfk WER | jfk RTF | long file | long RTF | segments | peak RSS short → long (MB) |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {results['model']} | {100 * results['jfk_wer']:.1f}% | {results['jfk_rtf']} | "
          f"{results['long_seconds']:.0f} s | {results['long_rtf']} | {segments} | "
          f"{results['peak_rss_mb_after_short']} → {results['peak_rss_mb_after_long']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
