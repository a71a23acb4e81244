"""Reading user-supplied audio files as 16 kHz mono float32 blocks, a bounded piece at a time.

Shared by speech recognition, audio ingest and the UI so every surface accepts the same formats and
refuses bad input with the same message. Decoding uses PyAV (bundled FFmpeg, installed with the `asr`
extra), so no system ffmpeg is needed. Memory stays bounded by the block size, whatever the file length.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mmagent.errors import AudioError, require, shown

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # what Whisper and Silero VAD expect

AUDIO_SUFFIXES: dict[str, str] = {
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".m4a": "audio/mp4",
    ".webm": "audio/webm",
}
AUDIO_MIME_TYPES = frozenset(AUDIO_SUFFIXES.values()) | {"audio/x-wav", "audio/x-flac", "audio/x-m4a"}


@dataclass(frozen=True)
class AudioInfo:
    """What the container header says, before decoding; `duration` is None when the format omits it."""

    path: Path
    mime_type: str
    duration: float | None
    sample_rate: int
    channels: int


def check_audio_path(path: str | Path) -> Path:
    """Refuse missing files and unsupported suffixes before anything heavy loads (cheap: no decoding)."""
    p = Path(path)
    if not p.is_file():
        raise AudioError(f"audio file '{shown(p)}' does not exist or is not a file; check the path.")
    mime = AUDIO_SUFFIXES.get(p.suffix.lower())
    if mime is None:
        raise AudioError(
            f"audio file '{shown(p)}' has the unsupported format '{shown(p.suffix) or '(no suffix)'}'; "
            f"expected one of {', '.join(sorted(AUDIO_SUFFIXES))}. "
            f"Convert it, e.g. `ffmpeg -i '{shown(p.name)}' out.flac`."
        )
    return p


def audio_mime_type(path: str | Path) -> str | None:
    """MIME type of a supported audio file name (by suffix), or None."""
    return AUDIO_SUFFIXES.get(Path(path).suffix.lower())


def _open(path: Path):  # noqa: ANN202 - av.container.InputContainer; av is an optional import
    av = require("av", "asr")
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise AudioError(
            f"audio file '{shown(path)}' could not be decoded ({_reason(exc)}); is it really audio? "
            "Check that it plays, or convert it, e.g. `ffmpeg -i IN out.flac`."
        ) from exc
    if not container.streams.audio:
        container.close()
        raise AudioError(f"file '{shown(path)}' holds no audio stream; give a file with sound in it.")
    return container


def probe_audio(path: str | Path) -> AudioInfo:
    """Read the header of an audio file (cheap: no samples are decoded)."""
    p = check_audio_path(path)
    with _open(p) as container:
        stream = container.streams.audio[0]
        duration = _declared_seconds(container)
        if duration is None and container.duration is not None:
            duration = container.duration / 1_000_000  # av.time_base: microseconds
        return AudioInfo(p, audio_mime_type(p) or "", duration, stream.rate or 0, stream.channels or 0)


def iter_audio_blocks(path: str | Path, block_seconds: float = 30.0) -> Iterator["np.ndarray"]:
    """Decode a file as float32 blocks of `block_seconds` at 16 kHz mono (the last may be shorter).

    Resampling and down-mixing happen in FFmpeg. Undecodable data at the end of a long file ends the stream
    (what was heard so far is kept) instead of discarding the whole file.
    """
    import numpy as np

    av = require("av", "asr")
    p = check_audio_path(path)
    block = max(1, int(block_seconds * SAMPLE_RATE))
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    pending: list[np.ndarray] = []
    count = done = 0
    with _open(p) as container:
        declared = _declared_seconds(container)
        for frame in _frames(container, av):
            for out in resampler.resample(frame):
                pending.append(out.to_ndarray().reshape(-1))
                count += pending[-1].size
            while count >= block:
                data = np.concatenate(pending)
                yield data[:block].astype(np.float32) / 32768.0
                pending, count, done = [data[block:]], data.size - block, done + block
    if count:
        yield np.concatenate(pending).astype(np.float32) / 32768.0
    heard = (done + count) / SAMPLE_RATE
    if declared is not None and heard < declared - max(1.0, 0.02 * declared):
        log.warning(
            "audio file '%s' ends after %.1f s of the %.1f s its header declares (truncated or damaged); "
            "what could be decoded is used. Re-export or re-download it for the rest.",
            shown(p), heard, declared,
        )


def _declared_seconds(container) -> float | None:  # noqa: ANN001 - a PyAV container
    """The first audio stream's duration as its header states it, or None."""
    stream = container.streams.audio[0]
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def _reason(exc: Exception) -> str:
    """FFmpeg's reason without its errno and the path (which the message names once, escaped)."""
    return getattr(exc, "strerror", None) or type(exc).__name__


def _frames(container, av) -> Iterator:  # noqa: ANN001 - PyAV objects
    """Audio frames of the first audio stream, then None to flush the resampler."""
    stream = container.streams.audio[0]
    decoded = container.decode(stream)
    while True:
        try:
            frame = next(decoded)
        except StopIteration:
            break
        except av.error.InvalidDataError:
            continue
        except av.error.FFmpegError as exc:
            raise AudioError(
                f"audio file '{shown(container.name)}' is damaged or not audio ({_reason(exc)}); "
                "re-export it or try another file."
            ) from exc
        frame.pts = None  # the resampler checks timestamps; damaged files have gaps
        yield frame
    yield None
