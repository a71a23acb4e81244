"""The summarize prompt fences each file once, unnumbered (numbered per-page fences made the default
model continue the fence pattern instead of summarizing)."""

from __future__ import annotations

from mmagent.tools.base import Source

from mmagent.flows.prompting import FENCE_CLOSE, FENCE_OPEN
from mmagent.flows.summarize import Piece, SummarizeFlow


def test_one_fence_per_file_in_reading_order():
    pieces = [
        Piece("Revenue rose 12 percent.", Source(uri="/docs/report.pdf", page=1)),
        Piece("The Madrid office opens in May.", Source(uri="/docs/report.pdf", page=2)),
        Piece("Call the bank on Monday.", Source(uri="/docs/todo.txt")),
        Piece("Costs fell.", Source(uri="(notes)")),
    ]
    text = SummarizeFlow._documents(pieces)
    assert text.count(FENCE_OPEN) == 3 and text.count(FENCE_CLOSE) == 3
    assert [line for line in text.splitlines() if line.startswith(FENCE_OPEN)] == [
        f"{FENCE_OPEN} report.pdf",
        f"{FENCE_OPEN} todo.txt",
        f"{FENCE_OPEN} notes",
    ]
    assert "Revenue rose 12 percent.\n\nThe Madrid office opens in May." in text
    assert "[1]" not in text
