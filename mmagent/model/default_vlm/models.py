"""The embedded models: which packaged language model each one composes with the shared vision side.

Every entry is assembled by the same code (`build.py`) into a standard LLaVA checkpoint; only the
language model, the chat template, the stored dtype and the special tokens differ. Pure data: importing
this module imports no torch, so `config`, `doctor` and the CLI can list the models cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmagent.config import DEFAULT_EMBEDDED, EMBEDDED_MODELS, EMBEDDED_PREFIX, embedded_name
from mmagent.errors import ConfigError
from mmagent.model import weights


@dataclass(frozen=True)
class EmbeddedModel:
    """One embedded vision-language model: a packaged LM + MobileNetV2 class names + region tokens + OCR."""

    name: str  # `model.id: embedded:<name>`, `mmagent setup --model <name>`
    title: str  # the language model as its authors name it
    language_model: weights.PackagedFile
    build_version: int  # bump when this model's recipe changes: a new cache folder is built
    folder_name: str  # cache folder without the version suffix
    template: str  # chat template file in this package
    dtype: str  # dtype the checkpoint is stored in (loading still honours `model.dtype`)
    pad_token: str
    eos_tokens: tuple[str, ...]

    @property
    def model_id(self) -> str:
        return EMBEDDED_PREFIX + self.name

    def model_dir(self, cache_dir: str | Path) -> Path:
        return Path(cache_dir) / "models" / f"{self.folder_name}-v{self.build_version}"


_CHATML_EOS = ("<|im_end|>", "<|endoftext|>")
EMBEDDED = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="smollm2-135m", title="SmolLM2-135M-Instruct", language_model=weights.SMOLLM2_GGUF,
            build_version=2, folder_name="mmagent-default-vlm",  # the folder earlier releases built: kept
            template="chat_template.jinja", dtype="float32", pad_token="<|im_end|>", eos_tokens=_CHATML_EOS,
        ),
        EmbeddedModel(
            name="qwen2.5-coder-0.5b", title="Qwen2.5-Coder-0.5B-Instruct", language_model=weights.QWEN_CODER_05B_GGUF,
            build_version=1, folder_name="mmagent-vlm-qwen2.5-coder-0.5b", template="chat_template_qwen2.jinja",
            dtype="bfloat16", pad_token="<|endoftext|>", eos_tokens=_CHATML_EOS,
        ),
        EmbeddedModel(
            name="qwen2.5-coder-1.5b", title="Qwen2.5-Coder-1.5B-Instruct", language_model=weights.QWEN_CODER_15B_GGUF,
            build_version=1, folder_name="mmagent-vlm-qwen2.5-coder-1.5b", template="chat_template_qwen2.jinja",
            dtype="bfloat16", pad_token="<|endoftext|>", eos_tokens=_CHATML_EOS,
        ),
    )
}
if tuple(EMBEDDED) != EMBEDDED_MODELS:  # config validates names against EMBEDDED_MODELS: keep them one list
    raise RuntimeError(f"mmagent.config.EMBEDDED_MODELS {EMBEDDED_MODELS} != recipes {tuple(EMBEDDED)}")


def get(name: str) -> EmbeddedModel:
    """The embedded model called `name` (also accepts 'default' and 'embedded:NAME')."""
    key = embedded_name(name) or name
    if key not in EMBEDDED:
        raise ConfigError(
            f"unknown embedded model {name!r}; valid: {', '.join(EMBEDDED)} (default: {DEFAULT_EMBEDDED}). "
            "Pick one with `mmagent setup --model NAME` or model.id: embedded:NAME."
        )
    return EMBEDDED[key]
