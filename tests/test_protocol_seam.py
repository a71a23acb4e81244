"""`ModelBackend` is the seam: no code outside the model core reaches past its Protocol.

An AST scan of every module outside `mmagent/model/`: an attribute read on anything named like a backend
(`backend`, `self.backend`, `self._backend`, `flow.backend`, ...) must be a member of the Protocol, and so
must a `getattr(backend, "NAME")` with a literal name. Training (`mmagent/finetune/`) is exempt: it trains
the weights of a model in this process, so it takes the concrete `HFVisionBackend`, not the Protocol.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("mmagent", "tools", "ui", "evals")
EXEMPT = ("mmagent/model/", "mmagent/finetune/")


def _protocol_members() -> set[str]:
    from mmagent.model.base import ModelBackend

    return {n for n in dir(ModelBackend) if not n.startswith("_")} | set(ModelBackend.__annotations__)


def _backend_named(node: ast.AST) -> bool:
    name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
    return "backend" in name.lower()


def violations(source: str, allowed: set[str]) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and _backend_named(node.value) and node.attr not in allowed:
            found.append((node.lineno, f"{ast.unparse(node.value)}.{node.attr}"))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
              and len(node.args) >= 2 and _backend_named(node.args[0]) and isinstance(node.args[1], ast.Constant)
              and node.args[1].value not in allowed):
            found.append((node.lineno, f"{node.func.id}({ast.unparse(node.args[0])}, {node.args[1].value!r})"))
    return found


def test_the_scan_catches_each_way_of_reaching_past_the_protocol():
    allowed = _protocol_members()
    source = ("n = self.backend.model.config\nt = backend.tokenizer\nbackend._lock\nocr = getattr(backend, 'ocr', False)\n"
              "ok = self.backend.info().context_length\nbackend.generate([])\ngetattr(self._backend, name)\n")
    assert sorted(line for line, _ in violations(source, allowed)) == [1, 2, 3, 4]


def test_nothing_outside_the_model_core_reaches_past_the_backend_protocol():
    allowed = _protocol_members()
    found = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(EXEMPT):
                continue
            found += [f"{rel}:{line}: {what}" for line, what in violations(path.read_text(encoding="utf-8"), allowed)]
    assert not found, "calls past the ModelBackend protocol (add a Protocol method instead):\n" + "\n".join(found)


def test_both_backends_implement_every_protocol_member():
    from mmagent.model.backend import HFVisionBackend
    from mmagent.model.openai_compat import OpenAICompatBackend

    methods = {n for n in _protocol_members() if n not in ("accepts", "adapters", "chat_template_hash")}
    for cls in (HFVisionBackend, OpenAICompatBackend):
        assert not [m for m in methods if not callable(getattr(cls, m, None))], cls.__name__
