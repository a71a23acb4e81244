"""What answers a suite's examples: the model, ASR, a memory search, or a flow. One class per `call:`.

Each predictor takes a batch of :class:`EvalExample` and returns one JSON-able prediction per example
(a string; a ranked list of doc ids for retrieval; a dict of stage outputs for the pipeline). Heavy
parts load on first use, so a fully cached rerun loads nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from mmagent.errors import MMAgentError
from mmagent.evals.dataset import EvalExample, load_corpus
from mmagent.evals.suite import Suite
from mmagent.prompting import chat_facts, chat_turn

if TYPE_CHECKING:
    from mmagent.config import Config

log = logging.getLogger(__name__)
_SENTENCE = re.compile(r"(?<=[.!?])\s")


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def postprocess(text: str, how: str) -> str:
    """The answer span a metric should see: whole text, its first line, its first sentence, or its whole
    sentences (a last one cut off by the token limit dropped)."""
    text = text.strip()
    if how == "first_line":
        return text.splitlines()[0].strip() if text else ""
    if how == "first_sentence":
        return _SENTENCE.split(text, maxsplit=1)[0].strip()
    if how == "whole_sentences":  # as the summarize flow shows a summary: no sentence cut off by the token limit
        from mmagent.flows.steps import whole_sentences

        return whole_sentences(text)
    return text


class Predictor:
    """Base: `predict(batch)`; `describe()` says what answered, for the manifest."""

    def __init__(self, suite: Suite, config: "Config", adapter: Optional[str], seed: int, backend: Any = None):
        self.suite, self.config, self.adapter, self.seed = suite, config, adapter, seed
        self._backend = backend
        self.workdir: Path = Path(".")

    @property
    def backend(self) -> Any:
        if self._backend is None:
            from mmagent.model import load_backend

            self._backend = load_backend(self.config)
        return self._backend

    def uses_model(self) -> bool:
        return True

    def model_info(self) -> Optional[dict[str, Any]]:
        """What answered when it is not the VLM (manifest and cache key); None = nothing to record."""
        return None

    def predict(self, batch: Sequence[EvalExample]) -> list[Any]:
        raise NotImplementedError


class ModelPredictor(Predictor):
    """Prompt the VLM (batched, left-padded) with the suite's prompt and decoding settings."""

    def messages(self, ex: EvalExample) -> list[dict[str, Any]]:
        values = _Blank(question=ex.question, context=ex.context or "", document=ex.document or "",
                        text=ex.document or "")
        user = self.suite.prompt.user.format_map(values)
        content: Any = [{"type": "image", "image": ex.image}, {"type": "text", "text": user}] if ex.image else user
        messages = [{"role": "system", "content": self.suite.prompt.system.format_map(values)}] if self.suite.prompt.system else []
        return messages + [{"role": "user", "content": content}]

    def predict(self, batch: Sequence[EvalExample]) -> list[Any]:
        gen = dict(self.suite.decoding)
        if gen.get("temperature", 0) > 0:
            gen["seed"] = self.seed
        fields = gen.pop("spans_from", ())
        if fields:  # extractive decoding: each answer quotes its own example's text, so one at a time
            return [postprocess(self._quote(ex, fields, gen), self.suite.postprocess) for ex in batch]
        facts = gen.pop("facts_from", ())
        if facts:  # closed-world facts: each output copies its own example's numbers, so one at a time
            return [postprocess(self._closed(ex, facts, gen), self.suite.postprocess) for ex in batch]
        conversations = [self.messages(ex) for ex in batch]
        texts = self.backend.generate_batch(conversations, adapter=self.adapter, **gen)
        return [postprocess(t, self.suite.postprocess) for t in texts]


    def _closed(self, ex: EvalExample, fields: Sequence[str], gen: dict[str, Any]) -> str:
        """Free text whose numbers, months and weekdays come from the example's `fields` (mmagent.model.closed_facts)."""
        return "".join(self.backend.generate(self.messages(ex), adapter=self.adapter,
                                             facts_from=_field_texts(ex, fields), **gen))

    def _quote(self, ex: EvalExample, fields: Sequence[str], gen: dict[str, Any]) -> str:
        """An answer constrained to a verbatim span of the example's `fields` (mmagent.model.extractive)."""
        passages = _field_texts(ex, fields)
        if not passages:
            raise MMAgentError(f"example {ex.id!r} has no {' or '.join(fields)} to quote an answer from.")
        skip = tuple({w.lower() for w in re.findall(r"\w+", ex.question)})  # an answer adds to the question
        return "".join(self.backend.generate(self.messages(ex), adapter=self.adapter, spans_from=passages,
                                             span_skip=skip, **gen))


def _field_texts(ex: EvalExample, fields: Sequence[str]) -> tuple[str, ...]:
    """The non-empty texts of an example's named fields (a suite's `spans_from` / `facts_from`)."""
    return tuple(text for text in (getattr(ex, f) or "" for f in fields) if text.strip())


class ChatPredictor(Predictor):
    """One `mmagent chat` turn per example (the messages `mmagent.prompting.chat_turn` builds for the chat
    command, the suite's `prompt.system` standing for `--system`). Each prediction is ``{"answer",
    "evidence"}``: the evidence is what the model was shown of the image (`ModelBackend.image_text`), so the
    faithfulness metric checks the answer against exactly that and the question."""

    def predict(self, batch: Sequence[EvalExample]) -> list[Any]:
        gen = dict(self.suite.decoding)
        if gen.get("temperature", 0) > 0:
            gen["seed"] = self.seed
        system = self.suite.prompt.system or None
        conversations = [chat_turn([], ex.question, [ex.image] if ex.image else [], system=system)[0] for ex in batch]
        facts = [chat_facts(c, ex.question, self._evidence) for c, ex in zip(conversations, batch)]
        if any(facts):  # each answer's own sources: one call per example (generate_batch takes one option set)
            texts = ["".join(self.backend.generate(c, adapter=self.adapter, facts_from=f, **gen))
                     for c, f in zip(conversations, facts)]
        else:
            texts = self.backend.generate_batch(conversations, adapter=self.adapter, **gen)
        return [{"answer": postprocess(t, self.suite.postprocess), "evidence": self._evidence(ex.image)}
                for ex, t in zip(batch, texts)]

    def _evidence(self, image: Optional[str]) -> list[str]:
        if not image:
            return []
        seen = self.__dict__.setdefault("_seen", {})  # several questions ask about one image: read it once
        if image not in seen:
            seen[image] = self.backend.image_text(image)
        return seen[image]


class AsrPredictor(Predictor):
    """Transcribe each example's audio with `mmagent.asr.Transcriber` (the `asr` config section)."""

    def uses_model(self) -> bool:
        return False

    def predict(self, batch: Sequence[EvalExample]) -> list[Any]:
        from mmagent.asr import Transcriber

        if not hasattr(self, "_asr"):
            self._asr = Transcriber(self.config.asr)
        return [self._asr.transcribe(_need(ex.audio, ex, "audio"), progress=False).text.strip() for ex in batch]


def _need(value: Optional[str], ex: EvalExample, what: str) -> str:
    if not value:
        raise MMAgentError(f"example {ex.id!r} has no {what}; the suite's call needs one in every example.")
    return value


def build_memory(config: "Config", corpus_file: Path, workdir: Path) -> tuple["Config", str]:
    """Index the suite's corpus in a fresh on-disk Chroma under `workdir`; returns (config, collection)."""
    from mmagent.memory.store import Document, open_memory

    memory_config = dataclasses.replace(config.memory, path=str(workdir / "memory"), url=None)
    config = dataclasses.replace(config, memory=memory_config)
    memory = open_memory(memory_config, "eval")
    corpus = load_corpus(corpus_file)
    memory.add(Document(text, {"source": doc_id}, id=doc_id) for doc_id, text in corpus.documents.items())
    return config, "eval"


class MemoryPredictor(Predictor):
    """Rank the corpus for each question with `mmagent.memory` (Chroma + the pinned embedder)."""

    def uses_model(self) -> bool:
        return False

    def predict(self, batch: Sequence[EvalExample]) -> list[Any]:
        from mmagent.memory.store import open_memory

        if not hasattr(self, "_memory"):
            config, name = build_memory(self.config, Path(self.suite.corpus), self.workdir)
            self._memory = open_memory(config.memory, name)
        k = max(self.suite.ks)
        mode = self.config.memory.search
        return [[hit.id for hit in self._memory.search(ex.question, k=k, mode=mode)] for ex in batch]


class ClassifyPredictor(Predictor):
    """The `classify` flow (label likelihoods under the VLM) on each example's text and/or image."""

    def predict(self, batch: Sequence[EvalExample]) -> list[Any]:
        from mmagent.flows.classify import ClassifyFlow, ClassifyRequest

        flow = ClassifyFlow(self.config, self.backend)
        return [flow.predict(ClassifyRequest(list(self.suite.labels), ex.document or ex.question, ex.image,
                                             adapter=self.adapter)).label
                for ex in batch]


class FusionPredictor(Predictor):
    """A trained fusion classifier (`mmagent.fusion`); its folder comes as the run's adapter
    (`mmagent eval fusion` passes it). Each distinct text and image of a batch is encoded once, through
    the feature cache in `paths.cache` (fusion suites use one batch per split, so runs share one entry)."""

    def uses_model(self) -> bool:
        return False

    def model_info(self) -> Optional[dict[str, Any]]:
        from mmagent.evals.suite import sha256_file

        folder = Path(_classifier(self.adapter))
        return {"model_id": "fusion-classifier", "model_path": str(folder.resolve()), "adapter": str(folder),
                "adapter_sha256": {n: sha256_file(folder / n) for n in ("manifest.json", "model.safetensors")}}

    def predict(self, batch: Sequence[EvalExample]) -> list[Any]:
        from mmagent.fusion import FusionClassifier
        from mmagent.fusion.data import Example

        model = FusionClassifier.load(_classifier(self.adapter))
        examples = [Example(ex.id, ex.document or ex.question, _need(ex.image, ex, "image"), ex.references[0])
                    for ex in batch]
        return [p.label for p in model.predict_examples(examples, cache_dir=self.config.paths.cache)]


def _classifier(adapter: Optional[str]) -> str:
    if not adapter:
        raise MMAgentError("suites with `call: fusion` need a trained classifier folder: "
                           "run them with `mmagent eval fusion CLASSIFIER_DIR ...`.")
    return adapter


class PipelinePredictor(Predictor):
    """The `qa` flow on spoken questions: keeps each stage's output (transcript, sources, answer)."""

    def predict(self, batch: Sequence[EvalExample]) -> list[Any]:
        from mmagent.flows.base import DoneEvent, SourceEvent
        from mmagent.flows.qa import QAFlow, QARequest

        if not hasattr(self, "_flow"):
            config, self._collection = build_memory(self.config, Path(self.suite.corpus), self.workdir)
            self._flow = QAFlow(config, self.backend)
        out = []
        gen = self.suite.decoding.get("max_new_tokens")
        for ex in batch:
            request = QARequest(question=ex.question, audio=[ex.audio] if ex.audio else [],
                                collection=self._collection, k=max(self.suite.ks), max_new_tokens=gen,
                                adapter=self.adapter)
            ranked, done = [], None
            for event in self._flow.run(request):
                if isinstance(event, SourceEvent):
                    ranked.append(event.source.uri)
                elif isinstance(event, DoneEvent):
                    done = event
            data = done.data if done else {}
            answer = _CITE.sub("", postprocess(done.answer if done else "", self.suite.postprocess)).strip()
            answered = bool(data.get("answered", True)) and not _DECLINED.match(answer)
            out.append({"transcript": data.get("transcript", ""), "ranked": ranked, "answer": answer,
                        "answered": answered})
        return out


_CITE = re.compile(r"\s*\[\d{1,2}\]")
# The qa prompt asks the model to say "I don't know." when the sources lack the answer: an abstention,
# which SQuAD v2.0 scores as the empty answer.
_DECLINED = re.compile(r"i (?:do not|don['’]t) know\b", re.IGNORECASE)


class SupportPredictor(Predictor):
    """The `support` flow over a task's customer turns, each task on a fresh copy of the demo database;
    records the tool calls that ran, whether it handed off, and the tickets it filed."""

    def predict(self, batch: Sequence[EvalExample]) -> list[Any]:
        return [self._task(ex) for ex in batch]

    def _task(self, ex: EvalExample) -> dict[str, Any]:
        from mmagent.flows.base import DoneEvent, HandoffEvent, SourceEvent, ToolResultEvent
        from mmagent.flows.support import SupportFlow, SupportRequest

        data = self.workdir / "support" / _safe(ex.id)
        if data.exists():  # a rerun of an uncached task starts from the seed again
            import shutil

            shutil.rmtree(data)
        config = dataclasses.replace(self.config, paths=dataclasses.replace(self.config.paths, data=str(data)))
        if self.suite.corpus is not None:  # the suite's help-centre articles, indexed once for all tasks
            if not hasattr(self, "_kb"):
                self._kb = build_memory(self.config, Path(self.suite.corpus), self.workdir)
            kb_config, name = self._kb
            config = dataclasses.replace(config, memory=kb_config.memory,
                                         flows=dataclasses.replace(config.flows, support_collection=name))
        flow = SupportFlow(config, self.backend)
        calls, handoff, answer, evidence = [], False, "", []
        gen = self.suite.decoding.get("max_new_tokens")
        try:
            for message in ex.extra.get("messages") or [ex.question]:
                request = SupportRequest(message=message, session=ex.id, max_new_tokens=gen, adapter=self.adapter)
                for event in flow.run(request):
                    # evidence: what the reply may state (faithfulness): tool results, refusals, passages and
                    # the policy's own words in a hand-off ("over the 50.00 limit") are the flow's, not the model's
                    if isinstance(event, ToolResultEvent):  # a refusal's reason (dates, limits) is the policy's
                        calls.extend([event.name] if event.ok else [])
                        evidence.append(event.text or event.error or "")
                    elif isinstance(event, SourceEvent):
                        evidence.append(event.source.excerpt)
                    elif isinstance(event, HandoffEvent):
                        handoff = True
                        evidence.append(event.reason)
                    elif isinstance(event, DoneEvent):
                        answer = event.answer
            tickets = [{k: t.get(k) for k in ("order_id", "kind", "amount", "status", "customer_id")}
                       for t in flow.db.tickets(session=ex.id)]
        finally:
            flow.close()
        return {"tool_calls": calls, "handoff": handoff, "tickets": tickets, "answer": answer, "evidence": evidence}


def _safe(name: str) -> str:
    """An example id as a folder name (ids come from data files: never let them climb out)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".") or "_"


PREDICTORS: dict[str, type[Predictor]] = {
    "model": ModelPredictor,
    "asr": AsrPredictor,
    "memory": MemoryPredictor,
    "flow:classify": ClassifyPredictor,
    "fusion": FusionPredictor,
    "flow:qa": PipelinePredictor,
    "flow:support": SupportPredictor,
    "chat": ChatPredictor,
}
