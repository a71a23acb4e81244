"""Configuration: `mmagent.yaml`, then `MMAGENT_*` environment variables, then CLI flags.

Each section is a dataclass validated in ``__post_init__``; the defaults point at the embedded offline
models, so no file is needed at all. Later sources override earlier ones field by field.

Environment variables are ``MMAGENT_<SECTION>_<FIELD>``, e.g. ``MMAGENT_MODEL_QUANTIZATION=4bit`` or
``MMAGENT_MEMORY_PATH=/data/mem``; ``MMAGENT_CONFIG`` names the YAML file (default: ``./mmagent.yaml``
when it exists). Adapters are a mapping: ``MMAGENT_ADAPTERS_<NAME>=/path/to/adapter``.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from mmagent.errors import ConfigError

DEFAULT_MODEL_ID = "default"
EMBEDDED_PREFIX = "embedded:"
# The embedded models `mmagent setup --model NAME` assembles (recipes: mmagent/model/default_vlm/models.py).
EMBEDDED_MODELS = ("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
# What `model.id: default` means. One constant on purpose: the default is chosen by a measurement run
# (benchmarks/model_select.py; README "Choosing the default"): the best-scoring embedded model whose first
# token for a 500-token prompt is <= 3 s and decode >= 5 tok/s on a 2-core CPU.
DEFAULT_EMBEDDED = "qwen2.5-coder-0.5b"
QUANTIZATIONS = ("none", "8bit", "4bit")
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")
ASR_COMPUTE_TYPES = (  # CTranslate2 quantization types; int8 is fastest on CPU
    "default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16",
    "int16", "float16", "bfloat16", "float32",
)


def _xdg(var: str, fallback: str) -> Path:
    return Path(os.environ.get(var) or Path.home() / fallback)


QA_MODES = ("auto", "extractive", "generative")
SEARCH_MODES = ("hybrid", "dense")


def _check_choice(section: str, name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(
            f"{section}.{name} must be one of {', '.join(choices)}; got {value!r}. "
            f"Set it in mmagent.yaml, MMAGENT_{section.upper()}_{name.upper()} or the matching CLI flag."
        )


def embedded_name(model_id: str) -> str | None:
    """The embedded model a `model.id` names ('default' resolves to DEFAULT_EMBEDDED), or None for hub
    ids and local paths."""
    if model_id == DEFAULT_MODEL_ID:
        return DEFAULT_EMBEDDED
    if model_id.startswith(EMBEDDED_PREFIX):
        return model_id[len(EMBEDDED_PREFIX):]
    return None


def _check_embedded(model_id: str) -> None:
    name = embedded_name(model_id)
    if name is not None and name not in EMBEDDED_MODELS:
        valid = ", ".join(EMBEDDED_PREFIX + n for n in EMBEDDED_MODELS)
        raise ConfigError(
            f"model.id {model_id!r} names no embedded model; valid: {DEFAULT_MODEL_ID} (= {EMBEDDED_PREFIX}"
            f"{DEFAULT_EMBEDDED}), {valid}. Set it in mmagent.yaml, MMAGENT_MODEL_ID or --model."
        )


def _check_positive(section: str, name: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{section}.{name} must be > 0; got {value!r}.")


@dataclass
class ModelConfig:
    id: str = field(
        default=DEFAULT_MODEL_ID,
        metadata={"help": "hub id or local directory of an image-text-to-text model; 'embedded:NAME' = an embedded "
                          f"model ({', '.join(EMBEDDED_MODELS)}); 'default' = embedded:{DEFAULT_EMBEDDED}"},
    )
    revision: str | None = field(default=None, metadata={"help": "hub revision (branch, tag or commit)"})
    draft_id: str | None = field(
        default=None,
        metadata={"help": "a smaller model that drafts tokens for model.id to verify (assisted generation: same "
                          "greedy output, faster decode), e.g. embedded:smollm2-135m or embedded:qwen2.5-coder-0.5b "
                          "for embedded:qwen2.5-coder-1.5b; one with another tokenizer drafts greedy requests only; "
                          "None = off"},
    )
    draft_tokens: int = field(
        default=4,
        metadata={"help": "tokens the draft proposes per step; verifying a longer block costs more than a step "
                          "on a CPU (transformers' 20 suits GPUs)"},
    )
    quantization: str = field(default="none", metadata={"help": "none | 8bit | 4bit (bitsandbytes)"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | mps"})
    dtype: str = field(default="auto", metadata={"help": "compute dtype: auto | float32 | bfloat16 | float16"})
    ocr: str = field(
        default="auto",
        metadata={"help": "add text read from images to the prompt: auto (on for the embedded model) | on | off"},
    )
    max_new_tokens: int = field(default=128, metadata={"help": "upper bound on generated tokens per answer"})
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy decoding"})
    repetition_penalty: float = field(default=1.1, metadata={"help": "1.0 = off"})
    allow_pickle: bool = field(
        default=False,
        metadata={"help": "also load PyTorch .bin weights (model and adapters); a pickle can run code when "
                          "loaded, so only for checkpoints you trust. Off: safetensors only"},
    )

    def __post_init__(self) -> None:
        if not self.id:
            raise ConfigError("model.id is empty; give a hub id, a local model directory, or 'default'.")
        _check_embedded(self.id)
        if self.draft_id:
            _check_embedded(self.draft_id)
        _check_choice("model", "quantization", self.quantization, QUANTIZATIONS)
        _check_choice("model", "device", self.device, DEVICES)
        _check_choice("model", "dtype", self.dtype, DTYPES)
        _check_choice("model", "ocr", self.ocr, ("auto", "on", "off"))
        _check_positive("model", "max_new_tokens", self.max_new_tokens)
        _check_positive("model", "draft_tokens", self.draft_tokens)
        _check_positive("model", "repetition_penalty", self.repetition_penalty)
        if self.temperature < 0:
            raise ConfigError(f"model.temperature must be >= 0 (0 = greedy); got {self.temperature!r}.")


@dataclass
class AsrConfig:
    model: str = field(default="default", metadata={"help": "faster-whisper model name or path; 'default' = tiny.en"})
    compute_type: str = field(default="int8", metadata={"help": "CTranslate2 compute type"})
    beam_size: int = field(default=5, metadata={"help": "beam search width"})
    threads: int = field(default=2, metadata={"help": "CPU threads"})
    language: str | None = field(default=None, metadata={"help": "force a language code; None = detect"})
    vad: bool = field(default=True, metadata={"help": "skip non-speech with Silero VAD"})

    def __post_init__(self) -> None:
        _check_choice("asr", "compute_type", self.compute_type, ASR_COMPUTE_TYPES)
        _check_positive("asr", "beam_size", self.beam_size)
        _check_positive("asr", "threads", self.threads)


@dataclass
class MemoryConfig:
    path: str = field(
        default_factory=lambda: str(_xdg("XDG_DATA_HOME", ".local/share") / "mmagent" / "memory"),
        metadata={"help": "directory of the on-disk Chroma store"},
    )
    url: str | None = field(default=None, metadata={"help": "Chroma server URL; when set, `path` is unused"})
    embedder: str = field(default="default", metadata={"help": "sentence-transformers name or path"})
    collection: str = field(default="default", metadata={"help": "collection used when none is named"})
    search: str = field(default="hybrid", metadata={"help": "how memory_search and qa rank chunks: hybrid "
                                                          "(dense + BM25 keywords, fused by rank) or dense"})

    def __post_init__(self) -> None:
        _check_choice("memory", "search", self.search, SEARCH_MODES)


@dataclass
class LimitsConfig:
    max_image_pixels: int = field(default=89_478_485, metadata={"help": "refuse larger images before decoding"})
    max_upload_mb: int = field(default=200, metadata={"help": "largest file the UI and API accept"})
    max_text_mb: int = field(default=20, metadata={"help": "largest text/HTML document ingest reads (tokenized "
                                                          "in memory); split larger ones"})

    def __post_init__(self) -> None:
        _check_positive("limits", "max_image_pixels", self.max_image_pixels)
        _check_positive("limits", "max_upload_mb", self.max_upload_mb)
        _check_positive("limits", "max_text_mb", self.max_text_mb)


@dataclass
class PathsConfig:
    cache: str = field(
        default_factory=lambda: str(_xdg("XDG_CACHE_HOME", ".cache") / "mmagent"),
        metadata={"help": "where assembled default models and downloads live"},
    )
    data: str = field(
        default_factory=lambda: str(_xdg("XDG_DATA_HOME", ".local/share") / "mmagent"),
        metadata={"help": "conversations, adapters and run outputs"},
    )


@dataclass
class FlowsConfig:
    qa_min_score: float = field(
        default=0.35, metadata={"help": "qa: passages below this cosine similarity count as not relevant"}
    )
    qa_top_k: int = field(default=4, metadata={"help": "qa: passages retrieved per question"})
    qa_mode: str = field(
        default="auto", metadata={"help": "qa: extractive (answer is a quoted span of a passage) | generative | "
                                          "auto (extractive for factual who/what/when/where/how-many questions)"}
    )
    qa_keyword_floor: float = field(
        default=0.3, metadata={"help": "qa: a passage BM25 ranks first is relevant when it holds this share of "
                                       "the question's keyword weight (and its cosine is positive)"}
    )
    support_collection: str | None = field(
        default=None, metadata={"help": "support: knowledge-base collection searched each turn; None = none"}
    )
    support_policy: str | None = field(
        default=None, metadata={"help": "support: policy YAML (copy the shipped one: mmagent prompts cp support_policy)"}
    )
    context_tokens: int = field(
        default=0, metadata={"help": "summarize: prompt budget in tokens; 0 = the model's context window"}
    )
    classifier: str | None = field(
        default=None, metadata={"help": "classify (CLI, tool, UI): a trained fusion classifier folder used instead of the VLM; None = the VLM"}
    )

    def __post_init__(self) -> None:
        if not -1.0 <= self.qa_min_score <= 1.0:
            raise ConfigError(f"flows.qa_min_score must be a cosine similarity in [-1, 1]; got {self.qa_min_score!r}.")
        _check_positive("flows", "qa_top_k", self.qa_top_k)
        _check_choice("flows", "qa_mode", self.qa_mode, QA_MODES)
        if not 0.0 <= self.qa_keyword_floor <= 1.0:
            raise ConfigError(f"flows.qa_keyword_floor must be a share in [0, 1]; got {self.qa_keyword_floor!r}.")
        if self.context_tokens and self.context_tokens < 256:
            raise ConfigError(f"flows.context_tokens must be 0 (model window) or >= 256; got {self.context_tokens!r}.")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    adapters: dict[str, str] = field(default_factory=dict)
    asr: AsrConfig = field(default_factory=AsrConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    flows: FlowsConfig = field(default_factory=FlowsConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SECTIONS = {f.name for f in dataclasses.fields(Config)}


def _coerce(section: str, name: str, hint: Any, value: Any) -> Any:
    """Turn YAML/env/flag values into the field's declared type, or say what was expected."""
    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("", "none", "null")):
            return None
        hint = args[0]
    if hint is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
    elif hint in (int, float):
        number = None if isinstance(value, bool) else _number(hint, value)  # int(True) == 1 would hide a typo
        if number is not None:
            return number
    elif hint is str:
        if isinstance(value, bool):  # YAML 1.1 reads a bare on/off (model.ocr: off) as a bool
            return "on" if value else "off"
        if isinstance(value, (str, int, float)):
            return str(value)
    else:
        return value
    raise ConfigError(f"{section}.{name} expects a {_type_name(hint)}; got {value!r}.")


def _number(hint: type, value: Any) -> int | float | None:
    """`value` as a finite int or float, or None: 1.5 is no int, and inf/nan are no setting."""
    import math

    try:
        number = float(value) if hint is float or isinstance(value, float) else int(value)
    except (TypeError, ValueError, OverflowError):
        if hint is int and isinstance(value, str):  # "1e3" or "2.0" from an environment variable
            return _number(int, _number(float, value))
        return None
    if isinstance(number, float):
        if not math.isfinite(number):
            return None
        if hint is int:
            return int(number) if number.is_integer() else None
    return number


def _type_name(hint: Any) -> str:
    return {int: "whole number", float: "number", str: "string", bool: "boolean (true/false)"}.get(
        hint, getattr(hint, "__name__", str(hint)))


def _build_section(section: str, cls: type, values: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown key(s) in section '{section}': {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}."
        )
    return cls(**{k: _coerce(section, k, hints[k], v) for k, v in values.items()})


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist; create it or unset MMAGENT_CONFIG.") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 "
            "(e.g. `iconv -f latin1 -t utf-8`)."
        ) from exc
    except OSError as exc:  # a folder, no permission
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror}); give the path of a YAML file.") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections; got {type(data).__name__}.")
    return data


def _env_layer(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    layer: dict[str, dict[str, Any]] = {}
    for key, value in env.items():
        if not key.startswith("MMAGENT_") or key == "MMAGENT_CONFIG":
            continue
        rest = key[len("MMAGENT_"):].lower()
        section, _, name = rest.partition("_")
        if section not in _SECTIONS or not name:
            continue
        layer.setdefault(section, {})[name] = value
    return layer


def _dotted_layer(overrides: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    layer: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        section, _, name = key.partition(".")
        if section not in _SECTIONS or not name:
            raise ConfigError(
                f"override {key!r} must look like SECTION.FIELD with SECTION one of {', '.join(sorted(_SECTIONS))}."
            )
        layer.setdefault(section, {})[name] = value
    return layer


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Merge file, environment and overrides (``{"model.quantization": "4bit"}``) into a validated Config.

    ``None`` override values are ignored, so CLI flags left unset do not mask the file or environment.
    """
    env = os.environ if env is None else env
    file = Path(path) if path else Path(env["MMAGENT_CONFIG"]) if env.get("MMAGENT_CONFIG") else None
    if file is None and Path("mmagent.yaml").is_file():
        file = Path("mmagent.yaml")
    layers = [_read_yaml(file) if file else {}, _env_layer(env), _dotted_layer(overrides or {})]
    unknown = sorted({str(s) for layer in layers for s in layer} - _SECTIONS)
    if unknown:
        raise ConfigError(f"unknown config section(s) {', '.join(unknown)}; valid: {', '.join(sorted(_SECTIONS))}.")
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, values in layer.items():
            if values is None:  # a section whose entries are all commented out (`adapters:` alone)
                continue
            if not isinstance(values, dict):
                raise ConfigError(f"config section '{section}' must be a mapping; got {values!r}.")
            merged.setdefault(section, {}).update(values)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(Config):
        values = merged.get(f.name, {})
        if f.name == "adapters":
            kwargs["adapters"] = {str(k): _coerce("adapters", str(k), str, v) for k, v in values.items()}
        else:
            kwargs[f.name] = _build_section(f.name, typing.get_type_hints(Config)[f.name], values)
    return Config(**kwargs)

