"""`HFVisionBackend`: any transformers image-text-to-text model, local or from the hub, streaming.

Loads through the Auto classes with the model's own processor and chat template (LLaVA,
LLaVA-OneVision, SmolVLM/Idefics3, Qwen2-VL, the embedded default); a plain causal LM works too, for
text only. Quantization and devices: see `quantization.py`. Adapters: see `adapters.py`.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from mmagent.config import Config, ModelConfig, embedded_name
from mmagent.errors import ImageError, MMAgentError, ModelLoadError
from mmagent.images import IMAGE_MIME_TYPES, ImageInput, load_image
from mmagent.model.adapters import AdapterManager
from mmagent.model.base import DecodeRow, GenerationOptions, Message, ModelInfo, Prompt, attach_images
from mmagent.model.openmp import release_idle_team
from mmagent.model.prompt_cache import PrefixCache
from mmagent.model.quantization import pin_4bit_weights, plan_quantization, resolve_device, resolve_dtype
from mmagent.model.template import template_hash

log = logging.getLogger(__name__)
_COUNTING_LOCK = threading.Lock()


def resolve_model_path(model: ModelConfig, cache_dir: str | Path) -> str:
    """The directory or hub id to load; builds an embedded model ('default', 'embedded:NAME') on first use."""
    if embedded_name(model.id) is not None:
        from mmagent.model.default_vlm.build import ensure_model

        return str(ensure_model(model.id, cache_dir))
    path = Path(model.id).expanduser()
    looks_local = model.id.startswith((".", "/", "~")) or path.exists() or model.id.count("/") > 1
    if looks_local:
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"model path '{model.id}' is not a model directory (expected {path / 'config.json'}); "
                "check the path, or give a hub id like 'HuggingFaceTB/SmolVLM-256M-Instruct'."
            )
        return str(path)
    return model.id


class HFVisionBackend:
    """One resident model + processor; generation is serialised (one request at a time per process).

    Implements :class:`mmagent.model.base.ModelBackend`. Each call names its adapter (None = base); the
    switch happens under the lock that serialises calls, so concurrent requests never see each other's."""

    def __init__(self, config: Config | None = None, model_config: ModelConfig | None = None) -> None:
        from mmagent.config import load_config

        self.config = config or load_config()
        self.model_config = model_config or self.config.model
        self._lock = threading.Lock()
        self._parameter_count: tuple[tuple[str, ...], int] | None = None  # (adapters loaded, parameters)
        started = time.perf_counter()
        self._load()
        self.load_seconds = time.perf_counter() - started
        for name, path in self.config.adapters.items():
            self.adapters.load(name, path)

    # ---- loading -------------------------------------------------------------------------------
    def _load(self) -> None:
        from transformers import AutoConfig

        from mmagent.model.default_vlm import vision  # noqa: F401  registers the embedded tower

        mc = self.model_config
        self.path = resolve_model_path(mc, self.config.paths.cache)
        self.device = resolve_device(mc.device)
        self.dtype = resolve_dtype(mc.dtype, self.device, embedded=embedded_name(mc.id) is not None)
        plan = plan_quantization(mc.quantization, self.device, self.dtype)
        if plan.warning:
            log.warning(plan.warning)
        self.quantization = plan
        common = {"revision": mc.revision, "trust_remote_code": False}
        try:
            hf_config = AutoConfig.from_pretrained(self.path, **common)
            self.vision = _has_vision(hf_config)
            self.processor = self._load_processor(common)
            model_cls = _model_class(self.vision)
            # safetensors only unless the user opts in: a pickled .bin runs code when it is loaded
            kwargs = {"dtype": self.dtype, "use_safetensors": None if mc.allow_pickle else True, **plan.load_kwargs}
            model = model_cls.from_pretrained(self.path, **common, **kwargs)
        except MMAgentError:
            raise
        except (OSError, ValueError, KeyError) as exc:
            pickled = not mc.allow_pickle and "safetensors" in str(exc)
            raise ModelLoadError(
                f"could not load model '{mc.id}' ({self.path}): {exc}\n" + (
                    "mmagent loads safetensors weights only (a pickled .bin runs code when loaded): convert the "
                    "checkpoint, or set model.allow_pickle: true for a model you trust." if pickled else
                    "Check model.id (a local directory with config.json, or a hub id you have downloaded or can "
                    "reach); set HF_HUB_OFFLINE=0 to allow downloads.")
            ) from exc
        if not plan.load_kwargs:
            model.to(self.device)
        elif plan.active == "4bit" and self.device == "cpu":
            pin_4bit_weights(model)
        self.model = model.eval()  # generate() runs under no_grad itself; training may share the process
        self.precision = plan.precision(str(self.dtype).removeprefix("torch."))
        self.chat_template_hash = template_hash(self.processor, self.vision)
        self.adapters = AdapterManager(self.model, self.chat_template_hash, allow_pickle=mc.allow_pickle)
        self.accepts = IMAGE_MIME_TYPES if self.vision else frozenset()
        self.embedded = embedded_name(mc.id) is not None
        self.ocr = mc.ocr == "on" or (mc.ocr == "auto" and self.embedded)
        self.draft, self.draft_tokenizer = self._load_draft(model_cls, common) if mc.draft_id else (None, None)
        self.prefixes = PrefixCache()

    def _load_draft(self, model_cls: Any, common: dict[str, Any]) -> tuple[Any, Any]:
        """The assistant for assisted generation (`model.draft_id`) and its tokenizer when it spells text with
        other tokens than the target (None when the vocabularies match). It only proposes tokens and the
        target checks every one, so greedy output stays the target's own; with another tokenizer,
        transformers re-tokenizes the text between the two (universal assisted decoding)."""
        from transformers import AutoConfig, AutoTokenizer

        mc = self.model_config
        path = resolve_model_path(ModelConfig(id=mc.draft_id), self.config.paths.cache)
        tokenizer = AutoTokenizer.from_pretrained(path, **common)
        same_vocabulary = tokenizer.get_vocab() == self.tokenizer.get_vocab()
        size = AutoConfig.from_pretrained(path, **common).get_text_config().vocab_size
        if not same_vocabulary and size == self.model.config.get_text_config().vocab_size:
            # transformers tells the two cases apart by this size alone
            raise ModelLoadError(
                f"model.draft_id '{mc.draft_id}' has another tokenizer than model.id '{mc.id}' but the same "
                f"vocabulary size ({size}), so transformers would read its token ids as the target's; "
                "use a draft with the target's tokenizer (e.g. embedded:qwen2.5-coder-0.5b for "
                "embedded:qwen2.5-coder-1.5b) or a clearly different one (e.g. embedded:smollm2-135m)."
            )
        draft = model_cls.from_pretrained(path, **common, dtype=self.dtype, use_safetensors=None if mc.allow_pickle else True)
        draft.generation_config.num_assistant_tokens = mc.draft_tokens
        draft.generation_config.num_assistant_tokens_schedule = "constant"
        return draft.to(self.device).eval(), None if same_vocabulary else tokenizer

    def _assist(self, inputs: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The draft's generate arguments when one is loaded and the request suits it: text only (the draft
        does not see images), no stateful logits processor (a grammar would advance on tokens the target then
        rejects) and, for a draft with another tokenizer, greedy only (to sample across vocabularies
        transformers cuts the draft's output layer down for good, which would break it for later requests)."""
        if self.draft is None or "pixel_values" in inputs or "logits_processor" in kwargs:
            return {}
        if self.draft_tokenizer is None:
            return {"assistant_model": self.draft}
        if kwargs.get("do_sample"):
            return {}
        return {"assistant_model": self.draft, "tokenizer": self.tokenizer, "assistant_tokenizer": self.draft_tokenizer}

    def _load_processor(self, common: dict[str, Any]) -> Any:
        from transformers import AutoProcessor, AutoTokenizer

        if not self.vision:
            return AutoTokenizer.from_pretrained(self.path, **common)
        try:
            return AutoProcessor.from_pretrained(self.path, **common)
        except (ImportError, ValueError):  # a fast image processor that wants torchvision: use the PIL one
            return AutoProcessor.from_pretrained(self.path, use_fast=False, **common)

    def with_config(self, config: Config) -> "HFVisionBackend":
        """This resident model (weights, processor, adapters, lock shared) under `config`'s decoding
        defaults, ocr switch and limits: `load_backend`'s view for a configuration that loads the same weights."""
        view = copy.copy(self)
        view.config, view.model_config = config, config.model
        view.ocr = config.model.ocr == "on" or (config.model.ocr == "auto" and self.embedded)
        return view

    @property
    def tokenizer(self) -> Any:
        return getattr(self.processor, "tokenizer", self.processor)

    def info(self) -> ModelInfo:
        return ModelInfo(
            model_id=self.model_config.id,
            path=self.path,
            architecture=type(self.model).__name__,
            precision=self.precision,
            device=self.device,
            parameters=self._parameters(),
            chat_template_hash=self.chat_template_hash,
            adapters=self.adapters.names,
            context_length=self._context_length(),
            reads_image_text=self.ocr,
            quantization=self.model_config.quantization,
        )

    def _parameters(self) -> int:
        """Counted once per set of loaded adapters: walking every tensor took milliseconds, and the UI asks
        for the model's details on every page run, before the question's answer starts."""
        adapters = tuple(self.adapters.names)
        if self._parameter_count is None or self._parameter_count[0] != adapters:
            self._parameter_count = (adapters, sum(p.numel() for p in self.model.parameters()))
        return self._parameter_count[1]

    def _context_length(self) -> int | None:
        cfg = self.model.config
        text_cfg = getattr(cfg, "text_config", None) or cfg
        value = getattr(text_cfg, "max_position_embeddings", None)
        return int(value) if value else None

    # ---- the protocol's tokenizer-side calls (nobody outside the model core touches the tokenizer) ----
    def count_tokens(self, text: str, images: Sequence[Any] = ()) -> int:
        with self._counting() as (processor, tokenizer):
            if images:
                return int(processor(text=[text], images=list(images), return_tensors="pt")["input_ids"].shape[1])
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        with self._counting() as (_, tokenizer):
            enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [tuple(o) for o in enc["offset_mapping"]]

    @contextlib.contextmanager
    def _counting(self) -> Iterator[tuple[Any, Any]]:
        """A private processor copy for counting, one caller at a time: a fast tokenizer keeps padding settings
        as state, and request threads counting on the shared one could change them under generate_batch."""
        with _COUNTING_LOCK:
            if getattr(self, "_counter", None) is None:
                self._counter = copy.deepcopy(self.processor)
            yield self._counter, getattr(self._counter, "tokenizer", self._counter)

    def prompt(self, messages: Sequence[Message], *, images: Iterable[ImageInput] = (),
               tools: list[dict] | None = None) -> Prompt:
        text, pictures = self.render(attach_images(messages, images), tools=tools)
        return Prompt(text, tuple(pictures))

    def image_text(self, image: ImageInput) -> list[str]:
        from mmagent.model.image_text import tower_names

        messages, pictures = self.expand([{"role": "user", "content": [{"type": "image", "image": image}]}])
        texts = [part["text"].strip() for part in messages[0]["content"] if part.get("type") == "text"]
        names = tower_names(self.model, self.processor, pictures[0]) if pictures else ""
        return [t for t in (names, *texts) if t]

    def decode_rows(self, rows: Sequence[DecodeRow]) -> None:
        from mmagent.model.batch_decode import BatchDecoder

        if not rows:
            return
        with self._lock:  # the lock generate() and score() hold: no other call switches adapters meanwhile
            if getattr(self, "_decoder", None) is None:
                self._decoder = BatchDecoder(self)
            self._decoder.run(rows)

    # ---- generation ----------------------------------------------------------------------------
    def prepare(self, messages: Sequence[Message], tools: list[dict] | None = None) -> Any:
        """Messages → model inputs (a BatchFeature on the model's device). Public for training and evals."""
        rendered, pil_images = self.render(messages, tools=tools)
        if pil_images:
            inputs = self.processor(text=[rendered], images=pil_images, return_tensors="pt")
        else:
            inputs = self.tokenizer([rendered], return_tensors="pt", add_special_tokens=False)
        return inputs.to(self.model.device)

    def render(self, messages: Sequence[Message], tools: list[dict] | None = None, add_generation_prompt: bool = True):
        """Apply the chat template; returns (text, images in order). OCR text is added after each image."""
        template_messages, images = self.expand(messages)
        return self.apply_template(template_messages, tools, add_generation_prompt), images

    def expand(self, messages: Sequence[Message]) -> tuple[list[Message], list[Any]]:
        """Decode every image once (and read its text when OCR is on): template-ready messages whose
        image parts are bare ``{"type": "image"}``, plus the PIL images in order."""
        template_messages, images = [], []
        for message in messages:
            content = message.get("content")
            if isinstance(content, str) or content is None:
                template_messages.append(dict(message, content=content or ""))
                continue
            parts = []
            for part in content:
                if part.get("type") == "image" or "image" in part:
                    if not self.vision:
                        raise ImageError(
                            f"model '{self.model_config.id}' is text-only and cannot take images; "
                            "choose a vision-language model (model.id) or leave the image out."
                        )
                    image = load_image(part.get("image"), self.config.limits.max_image_pixels)
                    images.append(image)
                    parts.append({"type": "image"})
                    if self.ocr:
                        parts.extend(_ocr_parts(image))
                else:
                    parts.append(part)
            template_messages.append(dict(message, content=parts))
        return template_messages, images

    def apply_template(self, template_messages: Sequence[Message], tools: list[dict] | None = None,
                       add_generation_prompt: bool = True) -> str:
        kwargs = {"tools": tools} if tools else {}
        return self.processor.apply_chat_template(
            list(template_messages), tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs
        )

    def options(self, gen: dict[str, Any]) -> GenerationOptions:
        mc = self.model_config
        defaults = {"max_new_tokens": mc.max_new_tokens, "temperature": mc.temperature,
                    "repetition_penalty": mc.repetition_penalty}
        unknown = set(gen) - set(GenerationOptions.__dataclass_fields__)
        if unknown:
            raise MMAgentError(
                f"unknown generation option(s) {sorted(unknown)}; valid: {sorted(GenerationOptions.__dataclass_fields__)}"
            )
        return GenerationOptions(**{**defaults, **gen})

    def generate(
        self,
        messages: Sequence[Message],
        *,
        images: Iterable[ImageInput] = (),
        adapter: str | None = None,
        tools: list[dict] | None = None,
        **gen: Any,
    ) -> Iterator[str]:
        """Stream answer text. `adapter`: a loaded adapter's name, None for the base model. Inputs (and
        the adapter name) are validated before the first piece is yielded."""
        opts = self.options(gen)
        inputs = self.prepare(attach_images(messages, images), tools=tools)
        self._check_adapter(adapter)
        return self._stream(inputs, opts, adapter, self._system_prefix(messages))

    def _system_prefix(self, messages: Sequence[Message]) -> list[int] | None:
        """Token ids of a leading text system message rendered alone: the prompt prefix every request with
        that system prompt shares (its KV cache is reused, see prompt_cache.py)."""
        if not messages or messages[0].get("role") != "system" or not isinstance(messages[0].get("content"), str):
            return None
        text = self.apply_template([messages[0]], None, add_generation_prompt=False)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _check_adapter(self, adapter: str | None) -> None:
        if adapter is not None:
            self.adapters.info(adapter)  # an unknown name fails here, before anything runs

    def _stream(self, inputs: Any, opts: GenerationOptions, adapter: str | None,
                prefix: list[int] | None = None) -> Iterator[str]:
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        cancel = threading.Event()

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):  # noqa: ANN001
                return cancel.is_set()

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = _generate_kwargs(opts, self.tokenizer)
        kwargs.update(self._assist(inputs, kwargs))
        failure: list[BaseException] = []
        with self._lock, self.adapters.selected(adapter) as model:

            def work() -> None:
                try:
                    _seed(opts)
                    reuse = {}
                    if prefix and "assistant_model" not in kwargs and "pixel_values" not in inputs:
                        key = (adapter, self.adapters.info(adapter).path if adapter else None)
                        cache = self.prefixes.start(model, inputs["input_ids"], prefix, key)
                        reuse = {} if cache is None else {"cache": cache}
                    model.generate(**inputs, **kwargs, **reuse, streamer=streamer,
                                   stopping_criteria=StoppingCriteriaList([_Cancelled()]))
                except BaseException as exc:  # surfaced in the caller's thread below
                    failure.append(exc)
                    streamer.end()

            thread = threading.Thread(target=work, daemon=True, name="mmagent-generate")
            release_idle_team()  # this thread now only waits: its OpenMP workers would slow the decoder's
            thread.start()
            try:
                for piece in streamer:
                    if piece:  # the streamer yields '' while a multi-byte character is incomplete
                        yield piece
            finally:
                cancel.set()
                thread.join()
        if failure:
            raise ModelLoadError(f"generation failed: {failure[0]}") from failure[0]

    def generate_ids(
        self,
        messages: Sequence[Message],
        *,
        images: Iterable[ImageInput] = (),
        adapter: str | None = None,
        **gen: Any,
    ) -> list[int]:
        """The generated token ids, not streamed: for exact comparisons (adapter contract, merge checks)."""
        opts = self.options(gen)
        inputs = self.prepare(attach_images(messages, images))
        with self._lock, self.adapters.selected(adapter) as model:
            _seed(opts)
            kwargs = _generate_kwargs(opts, self.tokenizer)
            output = model.generate(**inputs, **{**kwargs, **self._assist(inputs, kwargs)})
        return output[0, inputs["input_ids"].shape[1]:].tolist()

    def generate_batch(
        self, conversations: Sequence[Sequence[Message]], *, adapter: str | None = None, **gen: Any
    ) -> list[str]:
        """Answers to several conversations in one left-padded `generate` call (evals, bulk jobs).

        Greedy answers match one-at-a-time generation up to float rounding of padded positions."""
        opts = self.options(gen)
        texts, images = [], []
        for messages in conversations:
            text, imgs = self.render(messages)
            texts.append(text)
            images.extend(imgs)
        tok = self.tokenizer
        side, pad = tok.padding_side, tok.pad_token
        tok.padding_side = "left"  # decoder-only: new tokens must follow each prompt directly
        tok.pad_token = pad if pad is not None else tok.eos_token
        try:
            if images:
                inputs = self.processor(text=texts, images=images, return_tensors="pt", padding=True)
            else:
                inputs = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        finally:
            tok.padding_side, tok.pad_token = side, pad
        inputs = inputs.to(self.model.device)
        with self._lock, self.adapters.selected(adapter) as model:
            _seed(opts)
            output = model.generate(**inputs, **_generate_kwargs(opts, tok))
        new = output[:, inputs["input_ids"].shape[1]:]
        return [tok.decode(row, skip_special_tokens=True) for row in new]

    def score(
        self,
        messages: Sequence[Message],
        candidates: Sequence[str],
        *,
        images: Iterable[ImageInput] = (),
        adapter: str | None = None,
    ) -> list[float]:
        """Log-likelihood of each candidate as the assistant's whole reply (end-of-turn included), in one
        batched forward pass under `adapter` (None = base); see `mmagent.model.scoring`."""
        import torch

        from mmagent.model.scoring import reply_batch

        batch = reply_batch(self, attach_images(messages, images), candidates)
        self._check_adapter(adapter)
        with self._lock, torch.inference_mode(), self.adapters.selected(adapter) as model:
            logits = model(**batch.inputs(model.device)).logits.float()
        return batch.log_likelihoods(logits)

    def complete(self, messages: Sequence[Message], **kwargs: Any) -> str:
        """The whole answer as one string (non-streaming convenience)."""
        return "".join(self.generate(messages, **kwargs))


def _seed(opts: GenerationOptions) -> None:
    if opts.seed is not None:
        import torch

        torch.manual_seed(opts.seed)


def _ocr_parts(image: Any) -> list[dict]:
    from mmagent.model.ocr import as_prompt_text, read_text

    text = as_prompt_text(read_text(image))
    return [{"type": "text", "text": text + "\n"}] if text else []


def _generate_kwargs(opts: GenerationOptions, tokenizer: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "max_new_tokens": opts.max_new_tokens,
        "repetition_penalty": opts.repetition_penalty,
        "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    }
    if opts.temperature > 0:
        kwargs.update(do_sample=True, temperature=opts.temperature, top_p=opts.top_p)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if opts.stop:
        kwargs.update(stop_strings=list(opts.stop), tokenizer=tokenizer)
    if opts.banned:  # every token holding a fragment, and each fragment as the tokenizer spells it
        spelled = {tuple(tokenizer(f, add_special_tokens=False)["input_ids"]) for f in opts.banned}
        kwargs["bad_words_ids"] = [[i] for i in _tokens_containing(tokenizer, opts.banned)] + [
            list(ids) for ids in sorted(spelled) if len(ids) > 1]
    if opts.grammar:
        from mmagent.model.grammar import GrammarLogitsProcessor

        kwargs["logits_processor"] = [GrammarLogitsProcessor(tokenizer, opts.grammar)]
    if opts.spans_from:
        from mmagent.model.extractive import SpanLogitsProcessor, end_token_ids

        kwargs.setdefault("logits_processor", []).append(SpanLogitsProcessor(
            tokenizer, opts.spans_from, opts.span_skip, opts.span_none, opts.span_none_bias))
        kwargs["eos_token_id"] = end_token_ids(tokenizer)  # a span ends at any of them, so generation must too
    if opts.facts_from:
        from mmagent.model.closed_facts import FactsLogitsProcessor

        kwargs.setdefault("logits_processor", []).append(FactsLogitsProcessor(tokenizer, opts.facts_from))
    return kwargs


@functools.lru_cache(maxsize=8)  # holds the tokenizer itself, so a recycled id() can never hit a stale entry
def _tokens_containing(tokenizer: Any, fragments: tuple[str, ...]) -> list[int]:
    """Every vocabulary token whose text contains one of `fragments`: banning only the usual spelling of a
    string fails, a model that wants to echo "<<<DATA" writes "<<<<Data" instead (seen with SmolLM2)."""
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    texts = [tokenizer.convert_tokens_to_string([t]) if t is not None else "" for t in vocab]
    return [i for i, text in enumerate(texts) if any(f in text for f in fragments)]


def _has_vision(hf_config: Any) -> bool:
    return getattr(hf_config, "vision_config", None) is not None


def _model_class(vision: bool) -> Any:
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    return AutoModelForImageTextToText if vision else AutoModelForCausalLM
