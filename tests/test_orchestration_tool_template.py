"""Tool calls through the model's own template (Qwen-style `<tool_call>` tokens), on a tiny random model.

With `tool_choice="auto"` such a model decides itself whether to call; once it writes the call marker,
the rest is constrained to the offered tools' schemas (the lazy grammar). Models without the marker
tokens (the embedded SmolLM2 template over a plain vocabulary) keep the explicit first-character grammar.
"""

from __future__ import annotations

import jsonschema
import pytest
from conftest import tiny_config
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool

from mmagent.model.grammar import GrammarError, call_markers_are_tokens, tool_call_grammar
from mmagent.orchestration.chat_model import MMChatModel
from mmagent.orchestration.tool_template import tool_template


@tool
def lookup_order(order_id: int) -> str:
    """Status of a customer order by its numeric id."""
    return "shipped"


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return "sunny"


@pytest.fixture(scope="module")
def tool_lm_dir(tmp_path_factory):
    from helpers.tool_template import build_tiny_tool_lm

    return build_tiny_tool_lm(tmp_path_factory.mktemp("tiny-tool-lm"))


@pytest.fixture(scope="module")
def tool_model(tool_lm_dir):
    return MMChatModel(config=tiny_config(tool_lm_dir), max_tokens=120)


def _matcher(tokenizer, grammar):
    import llguidance

    from mmagent.model.grammar import _ll_tokenizer

    return llguidance.LLMatcher(_ll_tokenizer(tokenizer), grammar)


def _accepts(tokenizer, grammar, text) -> bool:
    matcher = _matcher(tokenizer, grammar)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return all(matcher.consume_token(i) for i in ids) and matcher.is_accepting()


def test_a_template_with_call_tokens_is_native_and_the_default_template_is_not(tool_model, tiny_llava_dir):
    found = tool_template(tool_model.backend)
    assert found.renders_tools and found.marker_tokens and found.native
    default = tool_template(MMChatModel(config=tiny_config(tiny_llava_dir)).backend)
    assert default.renders_tools and not default.marker_tokens and not default.native


def test_lazy_grammar_lets_text_through_and_constrains_the_call_after_the_marker():
    from helpers.tool_template import tool_tokenizer

    tok = tool_tokenizer()
    assert call_markers_are_tokens(tok) and len(tok("<tool_call>", add_special_tokens=False)["input_ids"]) == 1
    tools = [convert_to_openai_tool(lookup_order)]
    lazy = tool_call_grammar(tools, "lazy", marker_tokens=True)
    call = '<tool_call>\n{"name": "lookup_order", "arguments": {"order_id": 7}}\n</tool_call>'
    assert _accepts(tok, lazy, "the order is on its way.")
    assert _accepts(tok, lazy, call)
    assert _accepts(tok, lazy, "Let me check. " + call)
    assert not _accepts(tok, lazy, call.replace("7", '"seven"'))  # argument of the wrong type
    assert not _accepts(tok, lazy, call.replace("lookup_order", "drop_tables"))  # a tool not offered
    # the quoted-text form cannot take the marker token the model was trained to write: why marker_tokens exists
    assert not _accepts(tok, tool_call_grammar(tools, "required", marker_tokens=False), call)
    assert _accepts(tok, tool_call_grammar(tools, "required", marker_tokens=True), call)
    with pytest.raises(GrammarError, match="'auto', 'lazy' or 'required'"):
        tool_call_grammar(tools, "sometimes")


def test_auto_lets_the_model_decide_and_its_call_is_schema_valid(tool_lm_dir):
    from helpers.tool_template import steer_to_call

    model = MMChatModel(config=tiny_config(tool_lm_dir), max_tokens=60)
    backend = model.backend
    prompt = backend.prepare([{"role": "user", "content": "Where is order 3?"}],
                             tools=[convert_to_openai_tool(lookup_order)])
    text_answer = model.bind_tools([lookup_order]).invoke("Where is order 3?")
    assert "<tool_call>" not in text_answer.content and not text_answer.tool_calls  # the random model answers in text

    steer_to_call(backend.model, backend.tokenizer, int(prompt["input_ids"][0, -1]))
    answer = model.bind_tools([lookup_order, get_weather]).invoke("Where is order 3?")
    assert answer.response_metadata["tool_calling"] == "template"
    assert len(answer.tool_calls) == 1 and not answer.invalid_tool_calls, answer
    call = answer.tool_calls[0]
    schema = convert_to_openai_tool({"lookup_order": lookup_order, "get_weather": get_weather}[call["name"]])
    jsonschema.validate(call["args"], schema["function"]["parameters"])
    unconstrained = model.model_copy(update={"constrain_tool_calls": False}).bind_tools([lookup_order])
    free = unconstrained.invoke("Where is order 3?")  # the model still opens a call; nothing makes it valid
    assert free.tool_calls or free.invalid_tool_calls


def test_forced_choice_on_a_native_template_always_calls_the_named_tool(tool_model):
    answer = tool_model.bind_tools([lookup_order, get_weather], tool_choice="lookup_order").invoke("hello")
    assert [c["name"] for c in answer.tool_calls] == ["lookup_order"] and not answer.invalid_tool_calls
    assert isinstance(answer.tool_calls[0]["args"]["order_id"], int)
    anyone = tool_model.bind_tools([lookup_order, get_weather], tool_choice="any").invoke("hello")
    assert len(anyone.tool_calls) == 1 and not anyone.invalid_tool_calls


def test_the_tools_reach_the_prompt_through_the_template(tool_model):
    text, _ = tool_model.backend.render([{"role": "user", "content": "hi"}],
                                        tools=[convert_to_openai_tool(lookup_order)])
    assert '"name": "lookup_order"' in text and text.index("<tools>") < text.index("<|im_start|>user")


QWEN = "qwen2.5-coder-0.5b"


@pytest.fixture(scope="module")
def qwen_model(cache_dir):
    """The embedded Qwen2.5-Coder-0.5B, when `mmagent setup --model qwen2.5-coder-0.5b` has built it here."""
    from mmagent.config import load_config
    from mmagent.model.default_vlm.build import is_built

    try:
        built = is_built(cache_dir, QWEN)
    except TypeError:  # a build module without named embedded models
        built = False
    if not built:
        pytest.skip(f"embedded:{QWEN} is not built in {cache_dir}; run `mmagent setup --model {QWEN}`")
    config = load_config(overrides={"model.id": f"embedded:{QWEN}", "paths.cache": str(cache_dir),
                                    "model.dtype": "bfloat16"}, env={})
    return MMChatModel(config=config, max_tokens=64)


@pytest.mark.slow
def test_qwen_decides_to_call_the_right_tool_through_its_template(qwen_model):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from tool_calls import tools

    assert tool_template(qwen_model.backend).native
    bound = qwen_model.bind_tools(tools())
    for prompt, expected in [("What's the weather in Paris right now?", "get_weather"),
                             ("Has order 5521 shipped yet?", "lookup_order"),
                             ("Open a ticket: my laptop screen is broken, it's urgent.", "create_ticket")]:
        answer = bound.invoke(prompt)
        assert answer.response_metadata["tool_calling"] == "template"
        assert [c["name"] for c in answer.tool_calls] == [expected], answer
    plain = bound.invoke("Say hello in French.")
    assert not plain.tool_calls and plain.content.strip()  # auto: no tool needed, none called
