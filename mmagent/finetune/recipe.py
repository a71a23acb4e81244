"""Training recipes: YAML files read into validated dataclasses, one registered kind per training script.

As in torchtune, a run is a recipe plus one script. A recipe's ``kind:`` picks the dataclass that
validates it and the function that trains it (:data:`KINDS`; ``fusion-classifier`` today, LoRA VLM
adapters register the same way). Shipped recipes live in ``mmagent/finetune/recipes/*.yaml``; users
copy one (``mmagent finetune cp NAME``) and edit it, or override any field on the command line with
``--set section.field=value`` (the value is parsed as YAML: ``--set train.epochs=3``).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from mmagent.errors import ConfigError


@dataclass(frozen=True)
class RecipeKind:
    """A kind of recipe: its dataclass and training function, as 'module:attribute' (imported on use)."""

    config: str
    train: str

    def config_class(self) -> type:
        return _import(self.config)

    def train_function(self) -> Callable[..., Any]:
        return _import(self.train)


KINDS: dict[str, RecipeKind] = {
    "fusion-classifier": RecipeKind("mmagent.fusion.recipe:FusionRecipe", "mmagent.fusion.train:train"),
    "lora": RecipeKind("mmagent.finetune.lora_recipe:LoraRecipe", "mmagent.finetune.lora:train"),
}


def register_kind(name: str, kind: RecipeKind) -> None:
    """Add a recipe kind (e.g. 'lora' for VLM adapters)."""
    KINDS[name] = kind


def _import(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def shipped_recipes() -> dict[str, Path]:
    """Name → path of every recipe shipped in the package."""
    from importlib.resources import files

    folder = files("mmagent.finetune").joinpath("recipes")
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml")}


def accelerate_configs() -> dict[str, Path]:
    """Name → path of the shipped `accelerate launch --config_file` examples (DDP, FSDP, DeepSpeed)."""
    from importlib.resources import files

    folder = files("mmagent.finetune").joinpath("accelerate")
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml")}


def recipe_path(name_or_path: str) -> Path:
    """A shipped recipe's name, or the path of a YAML file."""
    shipped = shipped_recipes()
    if name_or_path in shipped:
        return shipped[name_or_path]
    path = Path(name_or_path)
    if path.is_file():
        return path
    raise ConfigError(
        f"recipe {name_or_path!r} is neither a shipped recipe ({', '.join(sorted(shipped))}) nor a YAML file; "
        "list them with `mmagent finetune list`."
    )


def parse_sets(sets: Sequence[str]) -> dict[str, Any]:
    """['train.epochs=3', ...] → {'train': {'epochs': 3}}; values are parsed as YAML scalars/lists."""
    out: dict[str, Any] = {}
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects section.field=value (e.g. train.epochs=3); got {item!r}.")
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r} sets a field inside {part!r}, which is set to a value already.")
        node[parts[-1]] = _scalar(raw)
    return out


def _scalar(raw: str) -> Any:
    """A --set value parsed as YAML, except that YAML 1.1's on/off/yes/no stay strings (`model.ocr=off`)."""
    import yaml

    if not raw.strip():
        return ""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"--set value {raw!r} is not a YAML value ({getattr(exc, 'problem', None) or exc}); "
            "quote it, e.g. --set 'data.train=\"[x].jsonl\"'."
        ) from exc
    if isinstance(value, bool) and raw.strip().lower() not in ("true", "false"):
        return raw.strip()
    return value


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_recipe(name_or_path: str, sets: Sequence[str] = ()) -> Any:
    """Read a recipe (shipped name or path), apply --set overrides, validate into its kind's dataclass."""
    import yaml

    path = recipe_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"recipe {path} is not valid YAML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"recipe {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 or start again from "
            "`mmagent finetune cp NAME`."
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {path} must be a YAML mapping; got {type(data).__name__}.")
    data = merge(data, parse_sets(sets))
    kind = data.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"recipe {path}: `kind` must be one of {', '.join(sorted(KINDS))}; got {kind!r}.")
    return from_dict(KINDS[kind].config_class(), data, str(path.name))


def run_recipe(recipe: Any, resume: bool = False, progress: bool = True) -> Any:
    """Train with the function registered for the recipe's kind."""
    return KINDS[recipe.kind].train_function()(recipe, resume=resume, progress=progress)


def to_dict(recipe: Any) -> dict[str, Any]:
    return dataclasses.asdict(recipe)


def from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build dataclass `cls` from a mapping; unknown keys and wrong types are errors naming the field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}; got {data!r}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; valid: {', '.join(fields)}.")
    hints = typing.get_type_hints(cls)
    values = {name: _convert(hints[name], value, f"{where}: {name}") for name, value in data.items()}
    return cls(**values)


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list; got {value!r}.")
        return list(value) if origin is list else tuple(value)
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise ConfigError(f"{where} must be a finite number; got {value!r}.")
    if hint in (int, str, bool) and not (isinstance(value, hint) and not (hint is int and isinstance(value, bool))):
        raise ConfigError(f"{where} must be {hint.__name__}; got {value!r}.")
    return value
