"""Reading user-supplied audio files as 16 kHz mono float32 blocks, a bounded piece at a time.

Shared by speech recognition, audio ingest and the UI so every surface accepts the same formats and
refuses bad input with the same message. Decoding uses PyAV (bundled FFmpeg, installed with the `asr`
extra), so no system ffmpeg is needed. Memory stays bounded by the block size, whatever the file length.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mmagent.errors import AudioError, require

if TYPE_CHECKING:
    import numpy as np

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
        raise AudioError(f"audio file '{p}' does not exist or is not a file; check the path.")
    mime = AUDIO_SUFFIXES.get(p.suffix.lower())
    if mime is None:
        raise AudioError(
            f"audio file '{p}' has the unsupported format '{p.suffix or '(no suffix)'}'; "
            f"expected one of {', '.join(sorted(AUDIO_SUFFIXES))}. "
            f"Convert it, e.g. `ffmpeg -i '{p.name}' out.flac`."
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
        raise AudioError(f"audio file '{path}' could not be decoded ({exc}); is it really audio?") from exc
    if not container.streams.audio:
        container.close()
        raise AudioError(f"file '{path}' holds no audio stream; give a file with sound in it.")
    return container


def probe_audio(path: str | Path) -> AudioInfo:
    """Read the header of an audio file (cheap: no samples are decoded)."""
    p = check_audio_path(path)
    with _open(p) as container:
        stream = container.streams.audio[0]
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
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
    count = 0
    with _open(p) as container:
        for frame in _frames(container, av):
            for out in resampler.resample(frame):
                pending.append(out.to_ndarray().reshape(-1))
                count += pending[-1].size
            while count >= block:
                data = np.concatenate(pending)
                yield data[:block].astype(np.float32) / 32768.0
                pending, count = [data[block:]], data.size - block
    if count:
        yield np.concatenate(pending).astype(np.float32) / 32768.0


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
            raise AudioError(f"audio file '{container.name}' is damaged or not audio ({exc}).") from exc
        frame.pts = None  # the resampler checks timestamps; damaged files have gaps
        yield frame
    yield None
