"""Speech recognition with the real embedded Whisper tiny.en on real and synthesized audio.

WER is scored after Whisper's English normalisation (whisper_normalizer + jiwer), as the Whisper paper does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import require_binary

from mmagent.asr import Segment, Transcriber, Transcript
from mmagent.config import AsrConfig
from mmagent.errors import AudioError, ConfigError, ModelLoadError

JFK = (
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)
ESPEAK_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Please remember to send the quarterly report to the finance team before Friday.",
    "Speech recognition turns spoken words into written text.",
    "The meeting has been moved to three o'clock on Tuesday afternoon.",
    "Turn left at the next traffic light and park behind the library.",
]


def wer(reference: str | list[str], hypothesis: str | list[str]) -> float:
    """Word error rate after Whisper's English text normalisation (lists: corpus WER over all pairs)."""
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    if isinstance(reference, str):
        return jiwer.wer(norm(reference), norm(hypothesis))
    return jiwer.wer([norm(r) for r in reference], [norm(h) for h in hypothesis])


def sox(*args: str | Path) -> None:
    subprocess.run([require_binary("sox"), *map(str, args)], check=True, capture_output=True)


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    t = Transcriber(AsrConfig())
    t.load()
    return t


def test_jfk_word_error_rate_and_segments(transcriber, jfk_flac):
    started = time.perf_counter()
    transcript = transcriber.transcribe(jfk_flac, progress=False)
    seconds = time.perf_counter() - started
    score = wer(JFK, transcript.text)
    print(
        f"jfk.flac: WER {score:.3f}, {seconds:.2f} s for {transcript.duration:.1f} s of audio "
        f"(real-time factor {seconds / transcript.duration:.3f}): {transcript.text!r}"
    )
    assert score <= 0.05, transcript.text
    assert isinstance(transcript, Transcript) and all(isinstance(s, Segment) for s in transcript.segments)
    assert transcript.language == "en" and transcript.language_probability > 0.5
    assert transcript.duration == pytest.approx(11.0, abs=0.1)
    assert transcript.segments and transcript.segments[0].start < 1.0
    ends = [s.end for s in transcript.segments]
    assert all(s.start < s.end for s in transcript.segments) and ends == sorted(ends)
    assert ends[-1] <= transcript.duration + 0.5
    assert transcript.text == " ".join(s.text for s in transcript.segments)


@pytest.mark.parametrize("kind", ["silence", "whitenoise", "pinknoise"])
@pytest.mark.parametrize("vad", [True, False], ids=["vad", "no-vad"])
def test_silence_and_low_noise_give_an_empty_transcript(kind, vad, transcriber, tmp_path):
    """Whisper says " You" on ten seconds of digital silence without VAD; neither setting may show it."""
    clip = tmp_path / f"{kind}.wav"
    if kind == "silence":
        sox("-n", "-r", "16000", "-c", "1", "-b", "16", clip, "trim", "0", "10")
    else:
        sox("-R", "-n", "-r", "16000", "-c", "1", "-b", "16", clip, "synth", "10", kind, "vol", "0.02")  # -R: same noise every run
    asr = transcriber if vad else Transcriber(AsrConfig(vad=False))
    transcript = asr.transcribe(clip, progress=False)
    assert transcript.duration == pytest.approx(10.0, abs=0.05)
    assert transcript.text == "" and transcript.segments == [], transcript.segments


def _encode(samples, path: Path, codec: str, rate: int) -> Path:
    """Write 16 kHz mono float samples with a PyAV encoder (sox here has no mp3/aac/opus writers)."""
    import av
    import numpy as np

    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)[None, :]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = 16_000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return path


@pytest.mark.parametrize(
    "name, codec, rate",
    [
        ("jfk.wav", "pcm_s16le", 16000),
        ("jfk.mp3", "libmp3lame", 16000),
        ("jfk.ogg", "libopus", 48000),
        ("jfk.m4a", "aac", 16000),
        ("jfk.webm", "libopus", 48000),
    ],
)
def test_every_supported_format_decodes(name, codec, rate, transcriber, jfk_flac, tmp_path):
    import numpy as np

    from mmagent.audio import iter_audio_blocks

    samples = np.concatenate(list(iter_audio_blocks(jfk_flac)))
    clip = _encode(samples, tmp_path / name, codec, rate)
    transcript = transcriber.transcribe(clip, progress=False)
    assert wer(JFK, transcript.text) <= 0.05, (name, transcript.text)


def test_synthetic_speech_from_espeak(transcriber, tmp_path):
    """espeak-ng's robotic voice is hard for tiny.en (measured: corpus WER ~0.11, single clips up to 0.25)."""
    espeak = require_binary("espeak-ng")
    hypotheses = []
    for i, text in enumerate(ESPEAK_TEXTS):
        clip = tmp_path / f"tts{i}.wav"
        subprocess.run([espeak, "-w", str(clip), text], check=True, capture_output=True)
        hypotheses.append(transcriber.transcribe(clip, progress=False).text)
    per_clip = [wer(r, h) for r, h in zip(ESPEAK_TEXTS, hypotheses, strict=True)]
    corpus = wer(ESPEAK_TEXTS, hypotheses)
    print(f"espeak-ng corpus WER {corpus:.3f}; per clip {[round(x, 2) for x in per_clip]}: {hypotheses}")
    assert corpus <= 0.25 and max(per_clip) <= 0.5, list(zip(ESPEAK_TEXTS, hypotheses, strict=True))


def test_windows_cut_at_pauses_and_stream_lazily(transcriber, jfk_flac, tmp_path):
    """Small windows force several cuts: every sentence must still come out whole, at the right time."""
    gap = tmp_path / "gap.wav"
    sox("-n", "-r", "16000", "-c", "1", gap, "trim", "0", "3")
    speech = tmp_path / "jfk16.wav"
    sox(jfk_flac, "-r", "16000", "-c", "1", speech)
    clip = tmp_path / "three.flac"
    sox(speech, gap, speech, gap, speech, gap, clip)  # 42 s; sentences start at 0, 14, 28 s
    asr = Transcriber(AsrConfig(), window_seconds=20)
    stream = asr.stream(clip, progress=False)
    assert stream.language == "en" and stream.duration == pytest.approx(42.0, abs=0.1)
    first = next(iter(stream))
    assert first.start < 1.0  # a segment came out before the rest of the file was decoded
    rest = list(stream._windows)
    assert len(rest) >= 1  # ...while later windows were still waiting
    full = asr.transcribe(clip, progress=False)
    assert wer(" ".join([JFK] * 3), full.text) <= 0.05, full.text
    starts = [s.start for s in full.segments if s.text.lower().startswith("and so")]
    assert starts == pytest.approx([0.0, 14.0, 28.0], abs=1.0), full.segments
    with pytest.raises(RuntimeError, match="only once"):
        list(stream)


def test_progress_bar_follows_audio_time(transcriber, jfk_flac, capfd):
    transcriber.transcribe(jfk_flac, progress=True)
    err = capfd.readouterr().err
    assert "transcribing jfk.flac" in err and "11.0/11.0" in err, err


def test_bad_input_is_refused_with_a_clear_error(transcriber, jfk_flac, tmp_path):
    with pytest.raises(AudioError, match="does not exist"):
        transcriber.stream(tmp_path / "nope.wav")
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio")
    with pytest.raises(AudioError, match=r"unsupported format '\.txt'; expected one of .*\.flac"):
        transcriber.stream(notes)
    fake = tmp_path / "fake.wav"
    fake.write_text("not audio either")
    with pytest.raises(AudioError, match="could not be decoded"):
        transcriber.stream(fake)
    with pytest.raises(ConfigError, match="English-only.*valid: en"):
        transcriber.stream(jfk_flac, language="fr")
    with pytest.raises(ConfigError, match="asr.compute_type must be one of"):
        AsrConfig(compute_type="int4")
    with pytest.raises(ModelLoadError, match="no model.bin"):
        Transcriber(AsrConfig(model=str(tmp_path))).load()


def test_asr_tool_returns_transcript_and_timed_sources(jfk_flac):
    from mmagent.tools.registry import load_tools

    tool = load_tools(names=["asr"])["asr"]
    result = tool(path=str(jfk_flac))
    assert isinstance(result.data, Transcript) and result.text == result.data.text
    assert wer(JFK, result.text) <= 0.05
    assert [(s.start, s.end, s.excerpt) for s in result.sources] == [
        (seg.start, seg.end, seg.text) for seg in result.data.segments
    ]
    assert all(s.uri == str(jfk_flac) for s in result.sources)
    assert "audio/flac" in tool.accepts and "audio/mpeg" in tool.accepts


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["mmagent", "transcribe", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_cli_text_and_json(jfk_flac, tmp_path):
    plain = run_cli(str(jfk_flac), cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert wer(JFK, plain.stdout) <= 0.05 and len(plain.stdout.splitlines()) >= 1
    silence = tmp_path / "quiet.wav"
    sox("-n", "-r", "16000", "-c", "1", silence, "trim", "0", "2")
    out = run_cli("--json", "--language", "en", str(jfk_flac), str(silence), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    first, second = [json.loads(line) for line in out.stdout.splitlines()]
    assert first["language"] == "en" and first["duration"] == pytest.approx(11.0, abs=0.1)
    assert [set(s) for s in first["segments"]] == [{"start", "end", "text"}] * len(first["segments"])
    assert wer(JFK, first["text"]) <= 0.05
    assert second["text"] == "" and second["segments"] == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.wav"], "audio file 'missing.wav' does not exist"),
        (["notes.txt"], "unsupported format '.txt'"),
        (["--language", "fr", "JFK"], "English-only"),
        (["--set", "asr.beam_size=0", "JFK"], "asr.beam_size must be > 0"),
        (["--model", ".", "JFK"], "ASR model folder '.' has no model.bin"),
    ],
)
def test_cli_errors_without_traceback(args, message, jfk_flac, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    result = run_cli(*[str(jfk_flac) if a == "JFK" else a for a in args], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_import_stays_light():
    code = (
        "import sys, mmagent.asr, mmagent.audio, mmagent.cli.transcribe\n"
        "from mmagent.tools.registry import load_tools\n"
        "load_tools()\n"
        "heavy = [m for m in ('faster_whisper', 'ctranslate2', 'av', 'torch', 'numpy') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at load time: {out.stdout}"


LONG_SCRIPT = """
import json, resource, sys, time
from mmagent.asr import Transcriber
t = Transcriber(); t.load()
started = time.perf_counter(); first = None; segments = []
for seg in t.stream(sys.argv[1], progress=True):
    first = first if first is not None else time.perf_counter() - started
    segments.append(seg)
print(json.dumps({"seconds": time.perf_counter() - started, "first": first,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "text": " ".join(s.text for s in segments), "last_end": segments[-1].end}))
"""


@pytest.mark.slow
def test_long_file_streams_with_bounded_memory(jfk_flac, tmp_path):
    """Forty JFK sentences with 5 s gaps (10.7 min) stream in a fresh process; prints time and peak RSS."""
    speech, gap, unit, long = (tmp_path / n for n in ("s.wav", "g.wav", "u.wav", "long.flac"))
    sox(jfk_flac, "-r", "16000", "-c", "1", speech)
    sox("-n", "-r", "16000", "-c", "1", gap, "trim", "0", "5")
    sox(speech, gap, unit)
    sox(*[unit] * 40, long)
    env = {**os.environ, "COLUMNS": "100"}
    out = subprocess.run(
        [sys.executable, "-c", LONG_SCRIPT, str(long)], capture_output=True, text=True, timeout=1200, env=env
    )
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    score = wer(" ".join([JFK] * 40), stats["text"])
    print(
        f"640 s file: {stats['seconds']:.1f} s (RTF {stats['seconds'] / 640:.3f}), first segment after "
        f"{stats['first']:.1f} s, peak RSS {stats['peak_mb']:.0f} MB, WER {score:.3f}"
    )
    assert "640/640" in out.stderr.replace(".0", "")  # the progress bar reached the audio's duration
    assert stats["first"] < stats["seconds"] / 4  # segments arrive while the file is still being decoded
    assert stats["peak_mb"] < 800  # whole-file faster-whisper: ~720 MB for this file, 2.6 GB for an hour
    assert score <= 0.05 and stats["last_end"] == pytest.approx(640 - 5, abs=6)
