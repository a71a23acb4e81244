"""ASR: real-time factor and word error rate of the default (int8, beam 5) against float32 and beam 1,
on the same clips, interleaved in one process (embedded Whisper tiny.en through mmagent's Transcriber).

Clips: tests/data/jfk.flac (real speech) and sentences spoken by espeak-ng (known text, an unfamiliar
synthetic voice), each clean and with white noise mixed in at 5 dB SNR. RTF = transcription seconds /
audio seconds (lower is faster); WER over all words of a clip set. "Best WER per second" is read as: no
other setting is at least as accurate (WER within 0.5 points) and clearly faster (RTF ≥ 10% lower) on
the same clips; if one is, the default should change.

    python benchmarks/asr_bench.py --quick --json benchmarks/out/asr.json   # every clip, 1 round
    python benchmarks/asr_bench.py            # 5 rounds, and a 10-minute file streamed

Quick keeps every clip and cuts rounds: with two sentences (92 words) one word decided the verdict.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import contract

JFK = contract.HERE.parent / "tests" / "data" / "jfk.flac"
JFK_TEXT = ("And so my fellow Americans, ask not what your country can do for you, "
            "ask what you can do for your country.")
SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please send the invoice to the accounting team before Friday afternoon.",
    "My order arrived with a cracked teapot and a missing lid.",
    "The weather today is cold and windy with a chance of rain in the evening.",
    "Turn off the router, wait thirty seconds, and then turn it back on.",
    "She bought three green apples and a loaf of bread at the market.",
    "The meeting was moved to the small room on the second floor.",
    "Our support team answers every ticket within two working days.",
]
SNR_DB = 5.0
SETTINGS = {  # name: (compute_type, beam_size); the first is the shipped default (AsrConfig)
    "int8, beam 5 (default)": ("int8", 5),
    "int8, beam 1": ("int8", 1),
    "float32, beam 5": ("float32", 5),
    "float32, beam 1": ("float32", 1),
}


def _to_wav(src: Path, dst: Path) -> None:
    subprocess.run(["sox", str(src), "-r", "16000", "-c", "1", "-b", "16", str(dst)], check=True)


def _noisy(clean: Path, dst: Path, snr_db: float, seed: int) -> None:
    """`clean` with white noise at `snr_db` (signal power / noise power over the whole clip)."""
    import numpy as np

    with wave.open(str(clean)) as w:
        params, samples = w.getparams(), np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    signal = samples.astype(np.float64)
    noise = np.random.default_rng(seed).standard_normal(signal.size)
    noise *= np.sqrt(np.mean(signal ** 2) / 10 ** (snr_db / 10) / np.mean(noise ** 2))
    mixed = np.clip(signal + noise, -32768, 32767).astype(np.int16)
    with wave.open(str(dst), "wb") as w:
        w.setparams(params)
        w.writeframes(mixed.tobytes())


def make_clips(folder: Path, n_sentences: int) -> dict[str, tuple[Path, str]]:
    """{clip id: (wav path, reference text)}: jfk and espeak-ng sentences, each clean and noisy."""
    clips = {"jfk": (folder / "jfk.wav", JFK_TEXT)}
    _to_wav(JFK, clips["jfk"][0])
    for i, text in enumerate(SENTENCES[:n_sentences]):
        raw = folder / f"s{i}.raw.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), text], check=True)
        clips[f"espeak{i}"] = (folder / f"s{i}.wav", text)
        _to_wav(raw, clips[f"espeak{i}"][0])
    for clip_id, (path, text) in list(clips.items()):
        clips[f"{clip_id}+noise"] = (folder / f"{path.stem}.noisy.wav", text)
        _noisy(path, clips[f"{clip_id}+noise"][0], SNR_DB, seed=len(clips))
    return clips


def _duration(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def measure(clips: dict[str, tuple[Path, str]], repeats: int) -> list[dict]:
    """Each setting transcribes every clip once per round; rounds alternate the settings' order."""
    from mmagent.evals.metrics.speech import score_speech
    from mmagent.asr import Transcriber
    from mmagent.config import AsrConfig

    transcribers = {name: Transcriber(AsrConfig(compute_type=ct, beam_size=beam))
                    for name, (ct, beam) in SETTINGS.items()}
    for t in transcribers.values():  # load and warm up outside the timings
        t.transcribe(clips["jfk"][0], progress=False)
    texts: dict[str, dict[str, str]] = {name: {} for name in SETTINGS}

    def run(name: str):
        def once() -> dict[str, float]:
            seconds = {}
            for clip_id, (path, _) in clips.items():
                started = time.perf_counter()
                texts[name][clip_id] = transcribers[name].transcribe(path, progress=False).text
                seconds[clip_id] = time.perf_counter() - started
            return seconds
        return once

    timings = contract.interleaved({name: run(name) for name in SETTINGS}, repeats)
    durations = {clip_id: _duration(path) for clip_id, (path, _) in clips.items()}
    rows = []
    for name, rounds in timings.items():
        row = {"setting": name, "compute_type": SETTINGS[name][0], "beam_size": SETTINGS[name][1]}
        for subset, keep in (("clean", lambda c: not c.endswith("+noise")), ("noisy", lambda c: c.endswith("+noise")),
                             ("all", lambda c: True)):
            ids = [c for c in clips if keep(c)]
            row[f"wer_{subset}"] = round(100 * score_speech({c: [clips[c][1]] for c in ids},
                                                            {c: texts[name][c] for c in ids}).metrics()["wer"], 2)
            row[f"rtf_{subset}"] = round(contract.median([sum(r[c] for c in ids) for r in rounds])
                                         / sum(durations[c] for c in ids), 4)
        rows.append(row)
    return rows


def long_file(minutes: float) -> dict:
    """jfk + 19 s of silence repeated for `minutes`, streamed: the RTF and memory of a long recording."""
    from mmagent.asr import Transcriber

    with tempfile.TemporaryDirectory() as tmp:
        piece, long = Path(tmp) / "piece.wav", Path(tmp) / "long.wav"
        subprocess.run(["sox", str(JFK), "-r", "16000", "-c", "1", str(piece), "pad", "0", "19"], check=True)
        subprocess.run(["sox", *[str(piece)] * int(minutes * 60 // 30), str(long)], check=True)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        stream = Transcriber().stream(long, progress=False)
        segments = sum(1 for _ in stream)
        seconds = time.perf_counter() - started
    return {"audio_s": round(stream.duration, 1), "segments": segments, "rtf": round(seconds / stream.duration, 4),
            "peak_rss_mb_before": round(rss_before),
            "peak_rss_mb_after": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def verdict(rows: list[dict]) -> tuple[bool, str]:
    """Is the default the best WER per second? (see the module docstring for the rule)"""
    default = rows[0]
    better = [r for r in rows[1:] if r["wer_all"] <= default["wer_all"] + 0.5
              and r["rtf_all"] <= 0.9 * default["rtf_all"]]
    if not better:
        return True, "no other setting is as accurate and ≥10% faster"
    best = min(better, key=lambda r: r["rtf_all"])
    return False, (f"{best['setting']} has WER {best['wer_all']}% vs {default['wer_all']}% at "
                   f"{default['rtf_all'] / best['rtf_all']:.2f}× the speed")


def main() -> int:
    parser = contract.arguments(__doc__, "1 round, no long file")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default: 1 with --quick, else 5)")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the long-file test (full run; 0 skips it)")
    args = parser.parse_args()
    report = contract.Report("asr", quick=args.quick)
    with tempfile.TemporaryDirectory() as tmp:
        clips = make_clips(Path(tmp), len(SENTENCES))
        audio_s = sum(_duration(p) for p, _ in clips.values())
        report.rows = measure(clips, args.rounds or (1 if args.quick else 5))
    default = report.rows[0]
    for r in report.rows:
        r["speed_vs_default"] = round(default["rtf_all"] / r["rtf_all"], 3)
        report.ratios[f"rtf {r['setting']} / default"] = round(r["rtf_all"] / default["rtf_all"], 3)
    met, why = verdict(report.rows)
    report.target("ASR", default["rtf_all"], "default = best WER per second", met, unit="RTF",
                  baseline=", ".join(f"{r['setting']}: RTF {r['rtf_all']}, WER {r['wer_all']}%" for r in report.rows[1:]),
                  reason=f"WER {default['wer_all']}%; {why}")
    report.notes.update(clips=len(clips), audio_seconds=round(audio_s, 1), snr_db=SNR_DB,
                        rounds=args.rounds or (1 if args.quick else 5))
    if not args.quick and args.minutes > 0:
        report.notes["long_file"] = long_file(args.minutes)
    report.write(args.json)
    print(markdown(report, met, why))
    return 0


def markdown(report: contract.Report, met: bool, why: str) -> str:
    n = report.notes
    lines = [
        f"{n['clips']} clips, {n['audio_seconds']} s of audio (jfk.flac and espeak-ng sentences, each clean and "
        f"with white noise at {n['snr_db']:.0f} dB SNR); median of {n['rounds']} interleaved rounds; "
        f"load average {'/'.join(map(str, report.load_before))} before. RTF = seconds per second of audio.",
        "",
        contract.table(report.rows, [("setting", "setting"), ("wer_clean", "WER clean %"), ("wer_noisy", "WER noisy %"),
                                     ("wer_all", "WER all %"), ("rtf_all", "RTF"),
                                     ("speed_vs_default", "speed vs default")]),
        "",
    ]
    if "long_file" in n:
        lf = n["long_file"]
        lines += [f"Long file (default setting, streamed): {lf['audio_s']:.0f} s, {lf['segments']} segments, RTF "
                  f"{lf['rtf']}, peak RSS {lf['peak_rss_mb_before']} → {lf['peak_rss_mb_after']} MB.", ""]
    lines.append(f"Reading: the default (int8, beam 5) {'is' if met else 'is NOT'} the best WER per second: {why}.")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
