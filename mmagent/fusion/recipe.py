"""The `fusion-classifier` recipe: what to train on, which encoders, which fusion mode, how to train.

Fields carry ``metadata={"help": ...}`` and every invalid value fails in ``__post_init__`` with a
sentence naming the field, so a bad ``--set`` is caught before any feature is extracted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mmagent.errors import ConfigError

MODES = ("early", "late", "attention")  # mmagent.fusion.modes.MODES, repeated here to keep this torch-free


def _positive(where: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{where} must be > 0; got {value!r}.")


@dataclass
class DataSpec:
    train: str = field(default="easy-vqa:train", metadata={"help": "easy-vqa:train or a JSONL file of {text, image, label}"})
    validation: str | None = field(
        default=None, metadata={"help": "JSONL/easy-vqa source; None = hold out validation_fraction of train's images"})
    validation_fraction: float = field(default=0.1, metadata={"help": "share of training images held out when validation is None"})
    test: str | None = field(default="easy-vqa:test", metadata={"help": "evaluated once after training; None = skip"})
    limit: int = field(default=0, metadata={"help": "use a seeded random subset of this many training examples (0 = all)"})
    test_limit: int = field(default=0, metadata={"help": "same for the test source (0 = all)"})

    def __post_init__(self) -> None:
        if not 0 < self.validation_fraction < 1:
            raise ConfigError(f"data.validation_fraction must be in (0, 1); got {self.validation_fraction!r}.")
        if self.limit < 0 or self.test_limit < 0:
            raise ConfigError("data.limit and data.test_limit must be ≥ 0 (0 = all examples).")


@dataclass
class EncoderSpec:
    text: str = field(default="minilm", metadata={"help": "'minilm' (packaged) or a Hugging Face encoder path/id"})
    image: str = field(default="mobilenet_v2", metadata={"help": "image encoder; only 'mobilenet_v2' (packaged)"})
    image_size: int = field(default=128, metadata={"help": "image side in px (multiple of 32); grid = (size/32)²"})
    text_max_length: int = field(default=64, metadata={"help": "tokens kept per text"})
    text_train_last: int = field(default=0, metadata={"help": "fine-tune the text encoder's last N layers (0 = frozen)"})
    image_train_last: int = field(default=0, metadata={"help": "fine-tune the image encoder's last N blocks (0 = frozen)"})

    def __post_init__(self) -> None:
        if self.image_size < 32 or self.image_size % 32:
            raise ConfigError(f"encoders.image_size must be a multiple of 32 (≥ 32); got {self.image_size!r}.")
        _positive("encoders.text_max_length", self.text_max_length)
        if self.text_train_last < 0 or self.image_train_last < 0:
            raise ConfigError("encoders.text_train_last and image_train_last must be ≥ 0 (0 = frozen).")


@dataclass
class FusionSpec:
    mode: str = field(default="attention", metadata={"help": "early | late | attention"})
    hidden: int = field(default=512, metadata={"help": "hidden width of the classifier MLP"})
    dropout: float = field(default=0.1, metadata={"help": "dropout in the head"})
    attn_dim: int = field(default=256, metadata={"help": "attention: width of the cross-attention"})
    heads: int = field(default=4, metadata={"help": "attention: number of heads (divides attn_dim)"})

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"fusion.mode must be one of {', '.join(MODES)}; got {self.mode!r}.")
        _positive("fusion.hidden", self.hidden)
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"fusion.dropout must be in [0, 1); got {self.dropout!r}.")
        if self.attn_dim % self.heads:
            raise ConfigError(f"fusion.heads ({self.heads}) must divide fusion.attn_dim ({self.attn_dim}).")


@dataclass
class TrainSpec:
    epochs: int = field(default=20, metadata={"help": "maximum epochs"})
    batch_size: int = field(default=128, metadata={"help": "examples per step"})
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate of the head"})
    encoder_lr: float = field(default=1e-4, metadata={"help": "learning rate of fine-tuned encoder blocks"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    patience: int = field(default=3, metadata={"help": "stop after this many epochs without a better validation accuracy"})
    max_minutes: float = field(default=10.0, metadata={"help": "stop after this much training time (0 = no limit)"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0 = torch's default)"})

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "lr", "encoder_lr", "patience"):
            _positive(f"train.{name}", getattr(self, name))
        if self.weight_decay < 0 or self.max_minutes < 0 or self.threads < 0:
            raise ConfigError("train.weight_decay, train.max_minutes and train.threads must be ≥ 0.")


@dataclass
class FusionRecipe:
    kind: str = "fusion-classifier"
    output_dir: str = field(default="runs/fusion-classifier", metadata={"help": "where the classifier and logs go"})
    seed: int = field(default=0, metadata={"help": "seeds the split, initialisation and shuffling"})
    cache_dir: str | None = field(default=None, metadata={"help": "feature cache root; None = paths.cache"})
    data: DataSpec = field(default_factory=DataSpec)
    encoders: EncoderSpec = field(default_factory=EncoderSpec)
    fusion: FusionSpec = field(default_factory=FusionSpec)
    train: TrainSpec = field(default_factory=TrainSpec)

    def __post_init__(self) -> None:
        if self.kind != "fusion-classifier":
            raise ConfigError(f"FusionRecipe.kind must be 'fusion-classifier'; got {self.kind!r}.")
        if not self.output_dir:
            raise ConfigError("output_dir must name a directory for the classifier.")

    def resolved_cache_dir(self) -> str:
        if self.cache_dir:
            return self.cache_dir
        from mmagent.config import load_config

        return load_config().paths.cache  # mmagent.yaml / MMAGENT_PATHS_CACHE apply, as everywhere
