"""Cutting text into overlapping chunks sized in the embedder's own tokens.

Sizes are counted with the embedder's tokenizer because that is what truncates: all-MiniLM-L6-v2 reads
at most 256 word pieces and silently ignores the rest, so a chunk measured in characters or words can
lose its tail. Chunk text is sliced from the original string (via token offsets), never decoded from
word pieces, so case, accents and spacing survive. Cuts fall between words, not inside them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mmagent.errors import ConfigError


@dataclass(frozen=True)
class ChunkOptions:
    """`size` and `overlap` in embedder tokens; the overlap keeps a sentence cut at a border findable."""

    size: int = 200
    overlap: int = 40

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ConfigError(f"chunk size must be at least 8 tokens; got {self.size}.")
        if not 0 <= self.overlap < self.size // 2 + 1:
            raise ConfigError(
                f"chunk overlap must be between 0 and half the chunk size ({self.size // 2}); "
                f"got {self.overlap}."
            )

    def check_fits(self, max_tokens: int) -> None:
        """Refuse chunks the embedder would truncate (2 tokens go to [CLS]/[SEP])."""
        if self.size > max_tokens - 2:
            raise ConfigError(
                f"chunk size {self.size} tokens exceeds what the embedder reads "
                f"({max_tokens - 2} after special "
                "tokens); lower the chunk size."
            )


@dataclass(frozen=True)
class TimedChunk:
    """A chunk of a transcript with the time span (seconds) its segments cover."""

    text: str
    start: float
    end: float


def _offsets(text: str, tokenizer: Any) -> list[tuple[int, int]]:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return [tuple(o) for o in enc["offset_mapping"]]


def count_tokens(text: str, tokenizer: Any) -> int:
    return len(_offsets(text, tokenizer))


def _joined(offsets: Sequence[tuple[int, int]], i: int) -> bool:
    """True when token i continues the word of token i-1 (no gap between them)."""
    return offsets[i][0] == offsets[i - 1][1]


def chunk_text(text: str, tokenizer: Any, options: ChunkOptions = ChunkOptions()) -> list[str]:
    """Overlapping chunks of at most `options.size` tokens; [] for blank text."""
    offsets = _offsets(text, tokenizer)
    n = len(offsets)
    if n == 0:
        return []
    if n <= options.size:
        return [text.strip()]
    chunks: list[str] = []
    start = 0
    while True:
        end = min(start + options.size, n)
        if end < n:  # back off to a word border, but never below half a chunk
            border = end
            while border > start + options.size // 2 and _joined(offsets, border):
                border -= 1
            if not _joined(offsets, border):
                end = border
        chunks.append(text[offsets[start][0] : offsets[end - 1][1]].strip())
        if end >= n:
            return [c for c in chunks if c]
        nxt = max(end - options.overlap, start + 1)
        while nxt < end and _joined(offsets, nxt):
            nxt += 1
        start = nxt


def chunk_segments(
    segments: Iterable[tuple[float, float, str]], tokenizer: Any, options: ChunkOptions = ChunkOptions()
) -> list[TimedChunk]:
    """Group timed transcript segments into chunks of at most `options.size` tokens.

    Whole segments are kept together; the last segments of a chunk (up to `options.overlap` tokens) open
    the next one. A single segment longer than a chunk is split by :func:`chunk_text`, keeping its times.
    """
    chunks: list[TimedChunk] = []
    group: list[tuple[float, float, str, int]] = []

    def flush() -> None:
        if group:
            chunks.append(TimedChunk(" ".join(g[2] for g in group), group[0][0], group[-1][1]))

    for start, end, text in segments:
        text = text.strip()
        tokens = count_tokens(text, tokenizer)
        if not tokens:
            continue
        if tokens > options.size:
            flush()
            group = []
            chunks.extend(TimedChunk(c, start, end) for c in chunk_text(text, tokenizer, options))
            continue
        if group and sum(g[3] for g in group) + tokens > options.size:
            flush()
            carry: list[tuple[float, float, str, int]] = []
            for g in reversed(group):
                if sum(c[3] for c in carry) + g[3] > options.overlap:
                    break
                carry.insert(0, g)
            group = carry if sum(c[3] for c in carry) + tokens <= options.size else []
        group.append((start, end, text, tokens))
    flush()
    return chunks
