"""Source scan for unsafe loading and code execution (issue 16, Security).

Walks the syntax tree of every Python file that ships (mmagent/, tools/, evals/, ui/) and fails on:
`torch.load` without `weights_only=True`; pickle-family modules (pickle, dill, cloudpickle, joblib,
shelve, marshal) at all; builtin `eval`/`exec`; `trust_remote_code=True`; `use_safetensors=False`; and
`yaml.load` without a safe loader (`yaml.unsafe_load`/`full_load` too). A syntax tree, not a regex, so
`model.eval()` and strings that mention these names are not findings. A finding that is truly
unavoidable goes in ALLOWED with the reason; today there is none.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("mmagent", "tools", "evals", "ui")
PICKLE_MODULES = frozenset({"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"})
SAFE_YAML_LOADERS = frozenset({"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"})

# "path:what" -> why it cannot be avoided. Keep it empty unless a reviewer agrees.
ALLOWED: dict[str, str] = {}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _dotted(node: ast.AST) -> str:
    """'torch.load' for torch.load, 'yaml.load' for yaml.load, '' for anything not a plain dotted name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_const(node: ast.AST | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def _call_findings(call: ast.Call) -> list[str]:
    name = _dotted(call.func)
    found = []
    if name == "torch.load" and not _is_const(_keyword(call, "weights_only"), True):
        found.append("torch.load without weights_only=True (unpickles arbitrary code)")
    if name.split(".")[0] in PICKLE_MODULES and name.rsplit(".", 1)[-1] in ("load", "loads", "Unpickler", "open"):
        found.append(f"{name} (unpickling runs arbitrary code)")
    if isinstance(call.func, ast.Name) and call.func.id in ("eval", "exec"):
        found.append(f"builtin {call.func.id}()")
    if _is_const(_keyword(call, "trust_remote_code"), True):
        found.append("trust_remote_code=True (runs code from the model repository)")
    if _is_const(_keyword(call, "use_safetensors"), False):
        found.append("use_safetensors=False (loads pickled weights)")
    if name in ("yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all", "yaml.full_load_all"):
        found.append(f"{name} (constructs arbitrary Python objects)")
    if name in ("yaml.load", "yaml.load_all"):
        loader = _keyword(call, "Loader") or (call.args[1] if len(call.args) > 1 else None)
        if loader is None or _dotted(loader).rsplit(".", 1)[-1] not in SAFE_YAML_LOADERS:
            found.append(f"{name} without a safe Loader (use yaml.safe_load)")
    return found


def scan_source(source: str, path: str = "<string>") -> list[Finding]:
    """Every unsafe construct in one Python source text."""
    findings = []
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.Call):
            findings += [Finding(path, node.lineno, what) for what in _call_findings(node)]
        elif isinstance(node, ast.Import):
            findings += [Finding(path, node.lineno, f"import {a.name} (a pickle-family module)")
                         for a in node.names if a.name.split(".")[0] in PICKLE_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            root = node.module.split(".")[0]
            if root in PICKLE_MODULES:
                findings.append(Finding(path, node.lineno, f"from {node.module} import … (a pickle-family module)"))
            if node.module == "torch" and any(a.name == "load" for a in node.names):
                findings.append(Finding(path, node.lineno, "from torch import load (hides torch.load from review)"))
        elif isinstance(node, ast.Dict):  # {"trust_remote_code": True} passed as **kwargs
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "trust_remote_code" and _is_const(value, True):
                    findings.append(Finding(path, node.lineno, "trust_remote_code=True in a kwargs dict"))
                if isinstance(key, ast.Constant) and key.value == "use_safetensors" and _is_const(value, False):
                    findings.append(Finding(path, node.lineno, "use_safetensors=False in a kwargs dict"))
    return findings


def shipped_python_files() -> list[Path]:
    return sorted(p for folder in SCANNED for p in (REPO / folder).rglob("*.py") if ".venv" not in p.parts)


def test_the_shipped_source_has_no_unsafe_loading_or_code_execution():
    files = shipped_python_files()
    assert len(files) > 80 and any(p.name == "backend.py" for p in files)  # the scan really sees the package
    findings = []
    for path in files:
        rel = str(path.relative_to(REPO))
        findings += [f for f in scan_source(path.read_text(encoding="utf-8"), rel)
                     if f"{f.path}:{f.what.split(' ')[0]}" not in ALLOWED]
    assert not findings, "unsafe constructs (fix them, or add to ALLOWED with the reason):\n" + "\n".join(
        map(str, findings))


@pytest.mark.parametrize(
    "source, what",
    [
        ("import torch\nstate = torch.load(path)", "torch.load without weights_only=True"),
        ("import torch\nstate = torch.load(path, weights_only=False)", "torch.load without weights_only=True"),
        ("import torch\nstate = torch.load(path, weights_only=flag)", "torch.load without weights_only=True"),
        ("import pickle\nx = pickle.loads(data)", "import pickle"),
        ("x = pickle.load(fh)", "pickle.load (unpickling"),
        ("from dill import loads", "from dill import"),
        ("import joblib", "import joblib"),
        ("from torch import load", "from torch import load"),
        ("value = eval(text)", "builtin eval()"),
        ("exec(code, {})", "builtin exec()"),
        ("m = AutoModel.from_pretrained(p, trust_remote_code=True)", "trust_remote_code=True"),
        ("kw = {'trust_remote_code': True}", "trust_remote_code=True in a kwargs dict"),
        ("m = AutoModel.from_pretrained(p, use_safetensors=False)", "use_safetensors=False"),
        ("data = yaml.load(text)", "yaml.load without a safe Loader"),
        ("data = yaml.load(text, Loader=yaml.Loader)", "yaml.load without a safe Loader"),
        ("data = yaml.unsafe_load(text)", "yaml.unsafe_load"),
    ],
)
def test_the_scan_finds_each_unsafe_construct(source, what):
    assert any(what in f.what for f in scan_source(source)), scan_source(source)


def test_the_scan_leaves_safe_code_alone():
    safe = """
import torch, yaml, ast
state = torch.load(path, map_location="cpu", weights_only=True)
model = model.eval()
value = ast.literal_eval(text)
data = yaml.safe_load(text)
data = yaml.load(text, Loader=yaml.SafeLoader)
m = AutoModel.from_pretrained(p, trust_remote_code=False, use_safetensors=True)
note = "never call eval() or pickle.loads on user data"
"""
    assert scan_source(safe) == []
