"""The Tool contract: every tool found through the `mmagent.tools` entry points satisfies it, and a
third-party package registers exactly the way the built-ins do."""

from __future__ import annotations

import logging
import sys
import textwrap
from pathlib import Path

import pytest
from mmagent.tools.base import Source, Tool, ToolError, ToolResult
from mmagent.tools.registry import discover_tools, load_tools

BUILT_INS = {"asr"}  # vision and memory_search join when they land


def test_built_ins_are_registered_through_entry_points():
    assert BUILT_INS <= set(discover_tools(strict=True))


@pytest.mark.parametrize("name", sorted(discover_tools(strict=True)))
def test_every_discovered_tool_satisfies_the_interface(name):
    cls = discover_tools(strict=True)[name]
    assert issubclass(cls, Tool) and cls.name == name
    cls.validate_class()
    tool = cls()  # cheap: nothing heavy loads before the first call
    assert tool.is_initialized is False
    assert tool.inputs["type"] == "object" and tool.inputs.get("properties")
    assert isinstance(tool.accepts, frozenset) and all("/" in m for m in tool.accepts)
    with pytest.raises(ToolError, match=f"tool '{name}' got invalid arguments.*Expected: "):
        tool(no_such_argument_anywhere=1)
    assert tool.is_initialized is False  # arguments are checked before setup() runs
    for required in tool.inputs.get("required", []):
        with pytest.raises(ToolError, match=f"'{required}' is a required property"):
            tool()


class Echo(Tool):
    name = "echo"
    description = "Repeat the text back."
    inputs = {
        "type": "object",
        "properties": {
            "text": {"type": "string", "description": "what to repeat"},
            "times": {"type": "integer", "minimum": 1, "description": "how often"},
        },
        "required": ["text"],
        "additionalProperties": False,
    }
    setups = 0

    def setup(self) -> None:
        type(self).setups += 1

    def forward(self, text: str, times: int = 1) -> ToolResult:
        return ToolResult(
            " ".join([text] * times), data={"times": times}, sources=[Source(uri="memory://echo")]
        )


def test_setup_runs_once_and_arguments_are_validated():
    Echo.setups = 0
    echo = Echo()
    assert Echo.setups == 0
    assert echo(text="hi", times=2).text == "hi hi"
    assert echo(text="ho").text == "ho"
    assert Echo.setups == 1
    with pytest.raises(ToolError) as err:
        echo(text=3, times=0)
    message = str(err.value)
    assert (
        "`text`: 3 is not of type 'string'" in message
        and "`times`: 0 is less than the minimum of 1" in message
    )
    assert "`text` (string, required): what to repeat" in message


@pytest.mark.parametrize(
    "attrs, message",
    [
        ({"name": "Bad Name"}, "lowercase identifier"),
        ({"description": " "}, "description"),
        ({"inputs": {"type": "array"}}, '"type": "object"'),
        (
            {"inputs": {"type": "object", "properties": {"x": {"type": "strin", "description": "x"}}}},
            "not a valid JSON schema",
        ),
        ({"inputs": {"type": "object", "properties": {"x": {"type": "string"}}}}, 'need a "description"'),
        ({"accepts": {"audio/wav"}}, "frozenset of MIME types"),
        ({"output_type": "dataframe"}, "output_type"),
    ],
)
def test_malformed_tool_classes_are_refused(attrs, message):
    bad = type("Bad", (Echo,), attrs)
    with pytest.raises(ToolError, match=message):
        bad()


def _install_plugin(root: Path, dist: str, entry: str, module_src: str) -> None:
    """Lay out a module and its .dist-info the way `pip install` does, so importlib.metadata finds it."""
    (root / f"{dist}.py").write_text(textwrap.dedent(module_src))
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[mmagent.tools]\n{entry}\n")


PLUGIN = """
    from mmagent.tools.base import Tool, ToolResult

    class ShoutTool(Tool):
        name = "shout"
        description = "Upper-case the text."
        inputs = {"type": "object", "properties": {"text": {"type": "string", "description": "text"}},
                  "required": ["text"]}

        def forward(self, text):
            return ToolResult(text.upper())

    class NotATool:
        pass
"""


def test_third_party_tools_register_like_built_ins(tmp_path, monkeypatch, caplog):
    _install_plugin(tmp_path, "mmagent_shout", "shout = mmagent_shout:ShoutTool", PLUGIN)
    _install_plugin(tmp_path, "mmagent_broken", "broken = mmagent_shout:NotATool", "")
    _install_plugin(tmp_path, "mmagent_misnamed", "yell = mmagent_shout:ShoutTool", "")
    monkeypatch.syspath_prepend(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="mmagent.tools.registry"):
        found = discover_tools()
    assert "shout" in found and BUILT_INS <= set(found)
    assert "broken" not in found and "yell" not in found
    assert "must name a subclass" in caplog.text and "must equal the tool's name 'shout'" in caplog.text
    assert load_tools(names=["shout"])["shout"](text="hey").text == "HEY"
    with pytest.raises(ToolError, match="must name a subclass"):
        discover_tools(strict=True)
    with pytest.raises(ToolError, match="unknown tool.*nope.*installed: .*asr"):
        load_tools(names=["nope"])
    sys.modules.pop("mmagent_shout", None)
