"""Concurrent requests decoded together: a queue, one decoding thread, batches of mixed adapters.

Requests from many clients are queued; one worker thread takes what is waiting (up to ``max_batch``,
after at most ``max_wait`` seconds) and hands it to the backend's `decode_rows` (one left-padded
``generate`` call whose rows may name different LoRA adapters; see `mmagent.model.batch_decode`). Each
row streams its own text and ends on its own, so one long answer does not hold back the others' last
pieces. This is static batching: rows that arrive while a batch decodes wait for the next one.

Requests that need per-row logits processors (a grammar, extractive spans, banned strings), tool
templates or a fixed seed are not mixed: the worker runs them alone through the backend's own
``generate``, so they keep its exact behaviour.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from mmagent.errors import MMAgentError
from mmagent.model.base import DecodeRow, GenerationOptions, Message, Prompt

if TYPE_CHECKING:
    from mmagent.images import ImageInput
    from mmagent.serve.metrics import ServeMetrics

log = logging.getLogger(__name__)
_END = object()


class GenerationTimeout(MMAgentError):
    """A request waited and decoded longer than the server's time limit."""


class PromptTooLong(MMAgentError):
    """A prompt over the batcher's `max_prompt_tokens`."""


@dataclass
class Job:
    """One request in the queue. `direct` jobs run alone through the backend's own `generate`."""

    adapter: str | None
    options: GenerationOptions
    prompt: Prompt = Prompt("")
    direct: dict[str, Any] | None = None
    out: "queue.SimpleQueue[Any]" = field(default_factory=queue.SimpleQueue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.monotonic)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    batch_size: int = 0

    @property
    def key(self) -> tuple:
        """Jobs with equal keys may share a batch (same decoding rule)."""
        o = self.options
        return ("sample", o.temperature, o.top_p, o.repetition_penalty) if o.temperature > 0 else (
            "greedy", o.repetition_penalty)


class Generation:
    """What `Batcher.submit` returns: iterate for the text pieces; afterwards `finish_reason`,
    `prompt_tokens`, `completion_tokens` hold the request's figures. `close()` (or leaving the loop early)
    cancels the request; its row stops at the next decoding step."""

    def __init__(self, job: Job, stop: Sequence[str], timeout: float | None) -> None:
        self.job = job
        self.stop = tuple(s for s in stop if s)
        self.deadline = None if timeout is None else job.submitted + timeout
        self._iter = self._pieces()

    def __iter__(self) -> Iterator[str]:
        return self._iter

    def __next__(self) -> str:
        return next(self._iter)

    @property
    def finish_reason(self) -> str:
        return self.job.finish_reason

    @property
    def prompt_tokens(self) -> int:
        return self.job.prompt_tokens

    @property
    def completion_tokens(self) -> int:
        return self.job.completion_tokens

    def close(self) -> None:
        self._iter.close()
        self.job.cancelled.set()

    def cancel(self) -> None:
        """Stop the request from any thread (its reader may be blocked in another): the row ends at the next
        decoding step and the reader's loop then ends."""
        self.job.cancelled.set()

    def _raw(self) -> Iterator[str]:
        while True:
            remaining = None if self.deadline is None else self.deadline - time.monotonic()
            try:
                if remaining is not None and remaining <= 0:
                    raise queue.Empty
                item = self.job.out.get(timeout=remaining)
            except queue.Empty:
                self.job.cancelled.set()
                raise GenerationTimeout(
                    f"the request took longer than the server's limit of {self.deadline - self.job.submitted:.0f} s "
                    "(queue wait + decoding); ask for fewer tokens (max_tokens) or retry when the server is less busy."
                ) from None
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _pieces(self) -> Iterator[str]:
        """The raw pieces, cut at the first stop string (held back while a stop string may be starting)."""
        try:
            if not self.stop:
                yield from self._raw()
                return
            keep = max(len(s) for s in self.stop) - 1
            held = ""
            for piece in self._raw():
                held += piece
                hits = [i for i in (held.find(s) for s in self.stop) if i >= 0]
                if hits:
                    if min(hits):
                        yield held[:min(hits)]
                    self.job.finish_reason = "stop"
                    return
                if len(held) > keep:
                    cut = len(held) - keep
                    yield held[:cut]
                    held = held[cut:]
            if held:
                yield held
        finally:
            self.job.cancelled.set()


class Batcher:
    """The server's one decoding thread over one backend (an `HFVisionBackend` or a view of it)."""

    def __init__(self, backend: Any, *, max_batch: int = 8, max_wait: float = 0.01,
                 metrics: "ServeMetrics | None" = None, max_prompt_tokens: int | None = None) -> None:
        if max_batch < 1:
            raise MMAgentError(f"max_batch must be >= 1; got {max_batch}.")
        self.backend = backend
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.metrics = metrics
        self.max_prompt_tokens = max_prompt_tokens
        self._queue: "queue.Queue[Job | None]" = queue.Queue()
        self._pending: collections.deque[Job] = collections.deque()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="mmagent-batcher")
        self._thread.start()

    # ---- the caller's side ---------------------------------------------------------------------------
    def submit(self, messages: Sequence[Message], *, images: "Iterable[ImageInput]" = (), adapter: str | None = None,
               timeout: float | None = None, tools: list[dict] | None = None, **gen: Any) -> Generation:
        """Queue one request. Inputs (options, adapter name, images, template) are checked here, in the
        caller's thread, so a bad request fails before it is queued."""
        backend = self.backend
        options = backend.options(gen)
        if adapter is not None:
            backend.adapters.info(adapter)  # unknown name: AdapterError listing the loaded ones
        if options.grammar or options.spans_from or options.banned or options.seed is not None or tools:
            job = Job(adapter, options, direct={"messages": list(messages), "images": list(images), "tools": tools,
                                                "gen": gen})
        else:
            job = Job(adapter, options, prompt=backend.prompt(messages, images=images))
            self._check_length(job.prompt.text)
        self._queue.put(job)
        if self.metrics:
            self.metrics.queue_depth.inc()
        return Generation(job, options.stop, timeout)

    def _check_length(self, text: str) -> None:
        if self.max_prompt_tokens is None:
            return
        count = self.backend.count_tokens(text)
        if count > self.max_prompt_tokens:
            raise PromptTooLong(
                f"the prompt is {count} tokens (images' tokens not counted), over the limit of {self.max_prompt_tokens}; "
                "shorten the conversation or raise the server's --max-prompt-tokens."
            )

    def waiting(self) -> int:
        """Requests queued and not yet decoding."""
        return self._queue.qsize() + len(self._pending)

    def close(self) -> None:
        """Stop the worker after the batch it is decoding."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    # ---- the worker's side ---------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            first = self._pending.popleft() if self._pending else self._queue.get()
            if first is None:
                return
            batch = [first] if first.direct else self._gather(first)
            if self.metrics:
                self.metrics.queue_depth.dec(len(batch))
            for job in [j for j in batch if j.cancelled.is_set()]:  # the caller left while it waited
                job.out.put(_END)
            batch = [j for j in batch if not j.cancelled.is_set()]
            if not batch:
                continue
            started = time.monotonic()
            try:
                self._run_direct(batch[0]) if batch[0].direct else self._run_batch(batch)
            except BaseException as exc:  # every waiting caller gets the error; the worker lives on
                log.exception("batch of %d failed", len(batch))
                for job in batch:
                    job.out.put(exc)
            if self.metrics:
                self.metrics.observe_batch(batch, time.monotonic() - started)

    def _gather(self, first: Job) -> list[Job]:
        """`first` plus waiting jobs that decode the same way, up to max_batch; others stay pending in order."""
        deadline = time.monotonic() + self.max_wait
        batch, skipped = [first], []
        while len(batch) < self.max_batch:
            if self._pending:
                job = self._pending.popleft()
            else:
                try:
                    job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
            if job is None:  # close(): finish this batch first
                skipped.append(job)
                break
            (batch if not job.direct and job.key == first.key else skipped).append(job)
        self._pending.extendleft(reversed(skipped))
        return batch

    def _run_direct(self, job: Job) -> None:
        d = job.direct or {}
        kwargs = {"tools": d["tools"]} if d["tools"] else {}
        pieces = self.backend.generate(d["messages"], images=d["images"], adapter=job.adapter, **kwargs, **d["gen"])
        job.batch_size = 1
        try:
            for piece in pieces:
                if job.cancelled.is_set():
                    break
                job.completion_tokens += 1  # pieces, not tokens: the backend's streamer does not count them
                job.out.put(piece)
        finally:
            close = getattr(pieces, "close", None)
            if close:
                close()
        job.out.put(_END)

    def _run_batch(self, jobs: list[Job]) -> None:
        rows = [DecodeRow(j.prompt, j.adapter, j.options, emit=j.out.put, cancelled=j.cancelled,
                          on_end=lambda row, job=j: _ended(job, row)) for j in jobs]
        self.backend.decode_rows(rows)


def _ended(job: Job, row: DecodeRow) -> None:
    """A row's figures onto its job, then the end of its stream."""
    job.prompt_tokens, job.completion_tokens, job.batch_size = row.prompt_tokens, row.completion_tokens, row.batch_size
    if job.finish_reason == "stop" and row.finish_reason == "length":
        job.finish_reason = "length"
    job.out.put(_END)


class BatchedBackend:
    """The backend as flows see it inside the server: `generate` goes through the batcher (so flow
    requests share batches with chat requests); everything else is the backend's own."""

    def __init__(self, backend: Any, batcher: Batcher, timeout: float | None = None) -> None:
        self._backend = backend
        self.batcher = batcher
        self.timeout = timeout

    def generate(self, messages: Sequence[Message], *, images: "Iterable[ImageInput]" = (),
                 adapter: str | None = None, **gen: Any) -> Iterator[str]:
        return iter(self.batcher.submit(messages, images=images, adapter=adapter, timeout=self.timeout, **gen))

    def complete(self, messages: Sequence[Message], **kwargs: Any) -> str:
        return "".join(self.generate(messages, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)
