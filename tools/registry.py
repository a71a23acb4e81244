"""Finding tools: every tool, built-in or third-party, registers in the `mmagent.tools` entry-point group.

A package adds a tool by declaring, in its pyproject.toml::

    [project.entry-points."mmagent.tools"]
    weather = "my_package.weather:WeatherTool"

The entry-point name must equal the class's `name`. Discovery imports only the tool modules (which must
stay cheap to import); models load on a tool's first call.
"""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from mmagent.tools.base import Tool, ToolError

if TYPE_CHECKING:
    from mmagent.config import Config

GROUP = "mmagent.tools"
log = logging.getLogger(__name__)


def _load(ep: EntryPoint) -> type[Tool]:
    where = f"entry point '{ep.name} = {ep.value}' (group {GROUP}, from {ep.dist.name if ep.dist else '?'})"
    try:
        obj = ep.load()
    except ImportError as exc:  # a plugin whose optional dependency is missing
        raise ToolError(f"{where} could not be imported: {exc}") from exc
    if not (isinstance(obj, type) and issubclass(obj, Tool)):
        raise ToolError(f"{where} must name a subclass of mmagent.tools.base.Tool; got {obj!r}.")
    obj.validate_class()
    if obj.name != ep.name:
        raise ToolError(f"{where}: the entry-point name must equal the tool's name {obj.name!r}.")
    return obj


def discover_tools(strict: bool = False) -> dict[str, type[Tool]]:
    """Tool classes registered in the `mmagent.tools` group, by name.

    A broken plugin is logged and skipped, so one bad third-party package cannot disable the others;
    `strict=True` raises instead (tests and `mmagent doctor` use it).
    """
    found: dict[str, type[Tool]] = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            cls = _load(ep)
            if ep.name in found and found[ep.name] is not cls:
                raise ToolError(f"two packages register a tool named '{ep.name}'; uninstall one of them.")
        except ToolError as exc:
            if strict:
                raise
            log.warning("skipping tool: %s", exc)
            continue
        found[ep.name] = cls
    return found


def load_tools(config: "Config | None" = None, names: list[str] | None = None) -> dict[str, Tool]:
    """Instances of the discovered tools (all, or `names`), sharing one config. Cheap: no model loads here."""
    available = discover_tools()
    wanted = list(available) if names is None else names
    unknown = [n for n in wanted if n not in available]
    if unknown:
        raise ToolError(
            f"unknown tool(s) {', '.join(unknown)}; installed: {', '.join(available) or 'none'}. "
            "A tool must be registered in the 'mmagent.tools' entry-point group."
        )
    return {name: available[name](config) for name in wanted}
