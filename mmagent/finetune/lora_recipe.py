"""The `lora` recipe: LoRA / QLoRA adapters for the served vision-language model.

Kept free of torch so `--set` mistakes fail before anything heavy loads. The training script is
`mmagent.finetune.lora.train`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mmagent.config import embedded_name
from mmagent.errors import ConfigError

DEFAULT_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"
# train.report_to value → (module it needs, extra that installs it); passed to TrainingArguments.report_to.
REPORTERS = {"tensorboard": ("tensorboard", "train"), "mlflow": ("mlflow", "mlflow")}


def _positive(where: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{where} must be > 0; got {value!r}.")


@dataclass
class ModelSpec:
    id: str = field(default="default", metadata={"help": "base model: hub id, local directory, or 'default'"})
    quantization: str = field(default="none", metadata={"help": "none | 8bit | 4bit (4bit = QLoRA)"})
    ocr: str = field(default="auto", metadata={"help": "OCR text next to images, as served: auto | on | off"})

    def __post_init__(self) -> None:
        if self.quantization not in ("none", "8bit", "4bit"):
            raise ConfigError(f"model.quantization must be none, 8bit or 4bit; got {self.quantization!r}.")
        if self.ocr not in ("auto", "on", "off"):
            raise ConfigError(f"model.ocr must be auto, on or off; got {self.ocr!r}.")


@dataclass
class LoraDataSpec:
    train: str = field(default="easy-vqa:train", metadata={"help": "JSONL file or easy-vqa:train"})
    eval: str | None = field(default="easy-vqa:test", metadata={"help": "held-out set: eval loss and final accuracy"})
    limit: int = field(default=0, metadata={"help": "seeded random subset of training examples (0 = as many as the steps use)"})
    eval_limit: int = field(default=200, metadata={"help": "held-out examples used (0 = all)"})
    compare_base: bool = field(default=True, metadata={"help": "also score the base model and the blind baseline"})
    balance: bool = field(default=False, metadata={
        "help": "draw training examples evenly across categories (easy-vqa: shape / colour / yes-no), so rare "
                "question types get as many steps as common ones"})
    task: str = field(default="answer", metadata={
        "help": "answer: conversations, scored by exact match | classify: {text, image, label} rows trained and "
                "scored through the classify flow (accuracy, macro precision/recall/F1)"})
    labels: list[str] = field(default_factory=list, metadata={
        "help": "classify: the label set (empty = easy-vqa's 13 answers, or the labels in data.train)"})
    scoring: str = field(default="generate", metadata={
        "help": "classify: held-out predictions by greedy generation (fast) or the classify flow's calibrated "
                "label likelihoods (flow: exactly as served, ~26 forward passes per example)"})

    def __post_init__(self) -> None:
        if self.limit < 0 or self.eval_limit < 0:
            raise ConfigError("data.limit and data.eval_limit must be ≥ 0 (0 = all).")
        if self.task not in ("answer", "classify"):
            raise ConfigError(f"data.task must be answer or classify; got {self.task!r}.")
        if self.scoring not in ("generate", "flow"):
            raise ConfigError(f"data.scoring must be generate or flow; got {self.scoring!r}.")
        if self.labels and len(set(self.labels)) < 2:
            raise ConfigError(f"data.labels needs at least two distinct labels; got {self.labels!r}.")


@dataclass
class LoraSpec:
    r: int = field(default=16, metadata={"help": "LoRA rank"})
    alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)"})
    dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA path"})
    target_modules: str = field(default=DEFAULT_TARGETS, metadata={"help": "regex of modules that get LoRA"})
    train_projector: bool = field(default=True, metadata={"help": "fully train the vision→text projector"})
    train_vision: bool = field(default=False, metadata={"help": "fully train the vision tower too"})
    region_init: str = field(default="zero", metadata={
        "help": "embedded model: the projector's region-feature rows start as in the base (zero: silent) or "
                "random at word-embedding scale, as LLaVA projector pretraining starts"})

    def __post_init__(self) -> None:
        _positive("lora.r", self.r)
        _positive("lora.alpha", self.alpha)
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"lora.dropout must be in [0, 1); got {self.dropout!r}.")
        if self.region_init not in ("zero", "random"):
            raise ConfigError(f"lora.region_init must be zero or random; got {self.region_init!r}.")


@dataclass
class LoraTrainSpec:
    lr: float = field(default=2e-4, metadata={"help": "learning rate of the LoRA weights"})
    projector_lr: float = field(default=1e-3, metadata={"help": "learning rate of fully trained modules"})
    scheduler: str = field(default="cosine", metadata={"help": "transformers scheduler name: cosine | linear | constant ..."})
    warmup_ratio: float = field(default=0.05, metadata={"help": "share of steps spent warming up"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the training data (max_steps wins if > 0)"})
    max_steps: int = field(default=0, metadata={"help": "optimizer steps (0 = from epochs)"})
    batch_size: int = field(default=8, metadata={"help": "examples per device step"})
    grad_accum: int = field(default=1, metadata={"help": "steps accumulated per optimizer step"})
    max_length: int = field(default=512, metadata={"help": "longer conversations are skipped (counted in the summary)"})
    eval_steps: int = field(default=50, metadata={"help": "eval loss every N steps"})
    save_steps: int = field(default=50, metadata={"help": "checkpoint every N steps (resumable)"})
    max_minutes: float = field(default=0, metadata={"help": "stop and save after this long (0 = no limit)"})
    bf16: bool = field(default=False, metadata={"help": "bf16 autocast (on CPUs with AVX512-BF16 or GPUs)"})
    threads: int = field(default=0, metadata={
        "help": "torch CPU threads (0 = torch's default, one per core); recorded in the manifest either way"})
    report_to: list[str] = field(default_factory=list, metadata={
        "help": "extra loggers besides metrics.csv/jsonl: tensorboard (output_dir/runs/), mlflow (MLFLOW_TRACKING_URI)"})

    def __post_init__(self) -> None:
        unknown = [name for name in self.report_to if name not in REPORTERS]
        if unknown:
            raise ConfigError(f"train.report_to accepts {', '.join(REPORTERS)}; got {', '.join(map(repr, unknown))}.")
        for name in ("lr", "projector_lr", "batch_size", "grad_accum", "max_length", "eval_steps", "save_steps"):
            _positive(f"train.{name}", getattr(self, name))
        if self.threads < 0:
            raise ConfigError(f"train.threads must be ≥ 0 (0 = torch's default); got {self.threads!r}.")
        if self.max_steps <= 0 and self.epochs <= 0:
            raise ConfigError("set train.max_steps or train.epochs to a value > 0.")


@dataclass
class LoraRecipe:
    kind: str = "lora"
    output_dir: str = field(default="runs/lora", metadata={"help": "adapter, checkpoints, metrics and plots"})
    seed: int = field(default=0, metadata={"help": "seeds data order, LoRA init and dropout"})
    model: ModelSpec = field(default_factory=ModelSpec)
    data: LoraDataSpec = field(default_factory=LoraDataSpec)
    lora: LoraSpec = field(default_factory=LoraSpec)
    train: LoraTrainSpec = field(default_factory=LoraTrainSpec)

    def __post_init__(self) -> None:
        if self.kind != "lora":
            raise ConfigError(f"LoraRecipe.kind must be 'lora'; got {self.kind!r}.")
        if self.lora.region_init == "random" and (embedded_name(self.model.id) is None or not self.lora.train_projector):
            raise ConfigError("lora.region_init=random starts an embedded model's projector region rows, so it needs "
                              "model.id=default or embedded:NAME and lora.train_projector=true; got "
                              f"model.id={self.model.id!r}, train_projector={self.lora.train_projector}. "
                              "Add --set lora.region_init=zero.")
