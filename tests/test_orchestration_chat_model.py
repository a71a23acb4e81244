"""MMChatModel: LangChain's standard chat-model suites (tiny random LLaVA fast; embedded default slow),
plus message conversion, tool-call parsing and grammar-constrained decoding.

The suites' feature flags say what each model can do. The tiny model has random weights: its answers
are noise, so the few standard tests that check an answer's *meaning* (the argument value 3, the
Chinese name, choosing to call a tool unprompted) are marked xfail(strict=True) with the reason —
visible in every run, and a surprise pass fails the run.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import jsonschema
import pytest
from conftest import tiny_config
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from mmagent.errors import ImageError, MMAgentError
from mmagent.orchestration.chat_model import MMChatModel
from mmagent.orchestration.messages import ImagePolicy, to_hf_messages
from mmagent.orchestration.tool_parsing import holdback, parse_tool_calls

MEANING = "random weights: the answer cannot carry the meaning this test checks"
SMALL = "the embedded 135M model is too small for the meaning this test checks"


@pytest.fixture
def serve_suite_image(monkeypatch, cat_photo):
    """The suites download a PNG with httpx; the network is blocked, so serve a local one at that edge."""
    import langchain_tests.integration_tests.chat_models as suite
    from PIL import Image

    buffer = io.BytesIO()
    Image.open(cat_photo).convert("RGB").resize((64, 48)).save(buffer, format="PNG")

    class Response:
        content = buffer.getvalue()

    monkeypatch.setattr(suite.httpx, "get", lambda *a, **k: Response())


class MMFlags:
    """What an MMChatModel over a vision-language model with a tool-aware template can do."""

    @property
    def chat_model_class(self):
        return MMChatModel

    has_tool_calling = property(lambda self: True)
    has_tool_choice = property(lambda self: True)
    has_structured_output = property(lambda self: True)
    supports_image_inputs = property(lambda self: True)
    supports_image_tool_message = property(lambda self: True)
    supports_image_urls = property(lambda self: False)  # refused by default: no network at run time
    returns_usage_metadata = property(lambda self: True)
    supports_model_override = property(lambda self: False)  # one resident model; adapters switch instead


class TinyModel(MMFlags):
    """Suite settings for the tiny random LLaVA."""

    model_dir: Path

    @pytest.fixture(autouse=True)
    def _tiny(self, tiny_llava_dir, serve_suite_image):
        type(self).model_dir = tiny_llava_dir

    @property
    def chat_model_params(self) -> dict:
        return {"config": tiny_config(self.model_dir, **{"model.max_new_tokens": 120})}

    # Free-text JSON fields (a joke's setup) never close within the budget on random weights.
    has_structured_output = property(lambda self: False)


class TestTinyUnit(TinyModel, ChatModelUnitTests):
    pass


class TestTinyIntegration(TinyModel, ChatModelIntegrationTests):
    @pytest.mark.xfail(reason=MEANING + " (args must be {'input': 3})", strict=True)
    @pytest.mark.parametrize("model", [{}, {"output_version": "v1"}], indirect=True)
    def test_tool_calling(self, model) -> None:
        super().test_tool_calling(model)

    @pytest.mark.xfail(reason=MEANING + " (args must be {'input': 3})", strict=True)
    async def test_tool_calling_async(self, model) -> None:
        await super().test_tool_calling_async(model)

    @pytest.mark.xfail(reason=MEANING + " (the name must contain 你好)", strict=True)
    def test_unicode_tool_call_integration(self, model, **kwargs) -> None:
        super().test_unicode_tool_call_integration(model, **kwargs)

    @pytest.mark.xfail(reason=MEANING + " (a free-text argument that ends within the token budget)", strict=True)
    def test_bind_runnables_as_tools(self, model) -> None:
        super().test_bind_runnables_as_tools(model)

    @pytest.mark.xfail(reason=MEANING + " (must decide on its own to call get_weather)", strict=True)
    @pytest.mark.parametrize("model", [{}, {"output_version": "v1"}], indirect=True)
    def test_agent_loop(self, model) -> None:
        super().test_agent_loop(model)


@pytest.mark.slow
@pytest.mark.embedded_model
class TestDefaultIntegration(MMFlags, ChatModelIntegrationTests):
    """The same suite on the embedded default VLM (SmolLM2-135M + MobileNetV2): minutes of CPU."""

    @pytest.fixture(autouse=True)
    def _default(self, small_model_dir, cache_dir, serve_suite_image):
        type(self).cache = cache_dir

    @property
    def chat_model_params(self) -> dict:
        from mmagent.config import load_config

        overrides = {"paths.cache": str(self.cache), "model.max_new_tokens": 64, "model.id": "embedded:smollm2-135m"}
        return {"config": load_config(overrides=overrides, env={})}

    # Measured 2026-12-01: the calls are schema-valid (constrained decoding) but the 135M model's choices are
    # wrong, e.g. {'input': 256} where the test asks for 3; strict, so a better default model shows up here.
    @pytest.mark.xfail(reason=SMALL + " (it calls with {'input': 256}; the test wants 3)", strict=True)
    @pytest.mark.parametrize("model", [{}, {"output_version": "v1"}], indirect=True)
    def test_tool_calling(self, model) -> None:
        super().test_tool_calling(model)

    @pytest.mark.xfail(reason=SMALL + " (it calls with {'input': 256}; the test wants 3)", strict=True)
    async def test_tool_calling_async(self, model) -> None:
        await super().test_tool_calling_async(model)

    @pytest.mark.xfail(reason=SMALL + " (the 你好 argument does not end within 64 tokens)", strict=True)
    def test_unicode_tool_call_integration(self, model, **kwargs) -> None:
        super().test_unicode_tool_call_integration(model, **kwargs)

    @pytest.mark.xfail(reason=SMALL + " (it does not decide on its own to call get_weather)", strict=True)
    @pytest.mark.parametrize("model", [{}, {"output_version": "v1"}], indirect=True)
    def test_agent_loop(self, model) -> None:
        super().test_agent_loop(model)


# ---- message conversion ----------------------------------------------------------------------------
def _png_b64(cat_photo: Path) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.open(cat_photo).convert("RGB").resize((40, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_every_image_block_format_decodes_to_the_same_image(cat_photo, tmp_path):
    data = _png_b64(cat_photo)
    path = tmp_path / "cat.png"
    path.write_bytes(base64.b64decode(data))
    blocks = [
        {"type": "image", "base64": data, "mime_type": "image/png"},
        {"type": "image", "source_type": "base64", "data": data, "mime_type": "image/png"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
        {"type": "image", "path": str(path)},
        {"type": "image", "url": path.as_uri()},
    ]
    for block in blocks:
        [message] = to_hf_messages([HumanMessage([{"type": "text", "text": "what?"}, block])])
        image = message["content"][1]["image"]
        assert image.size == (40, 30), block
        assert message["content"][0] == {"type": "text", "text": "what?"}


def test_http_image_urls_are_refused_unless_allowed():
    message = HumanMessage([{"type": "image", "url": "https://example.com/cat.png"}])
    with pytest.raises(ImageError, match="allow_image_urls"):
        to_hf_messages([message])
    bad = HumanMessage([{"type": "image", "base64": base64.b64encode(b"not an image").decode()}])
    with pytest.raises(ImageError, match="not an image"):
        to_hf_messages([bad], ImagePolicy())


def test_images_stay_in_the_conversation_across_tool_turns(tiny_llava_dir, cat_photo):
    model = MMChatModel(config=tiny_config(tiny_llava_dir), max_tokens=8)
    data = _png_b64(cat_photo)
    conversation = [
        HumanMessage([{"type": "text", "text": "Is this order 1234?"},
                      {"type": "image", "base64": data, "mime_type": "image/png"}]),
        AIMessage("", tool_calls=[{"name": "lookup_order", "args": {"order_id": 1234}, "id": "c1"}]),
        ToolMessage([{"type": "text", "text": "shipped, photo:"},
                     {"type": "image", "base64": data, "mime_type": "image/png"}], tool_call_id="c1"),
        HumanMessage("And now?"),
    ]
    hf = to_hf_messages(conversation)
    assert [m["role"] for m in hf] == ["user", "assistant", "tool", "user"]
    assert hf[1]["tool_calls"][0]["function"] == {"name": "lookup_order", "arguments": {"order_id": 1234}}
    text, images = model.backend.render(hf)
    assert len(images) == 2  # the user's photo and the tool's image both reach the model
    assert text.index("<image>") < text.index("<tool_call>") < text.index("<tool_response>")
    assert '"order_id": 1234' in text
    answer = model.invoke(conversation)
    with_images = answer.usage_metadata["input_tokens"]
    without = model.invoke([HumanMessage("Is this order 1234?"), *conversation[1:2],
                            ToolMessage("shipped, photo:", tool_call_id="c1"), conversation[3]])
    assert with_images - without.usage_metadata["input_tokens"] == 2 * (16 + 1)  # 16 image tokens + newline, each


# ---- parsing -------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, name, args", [
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', "get_weather", {"city": "Paris"}),
    ('<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}', "get_weather", {"city": "Paris"}),  # no close
    ("<tool_call>{'name': 'get_weather', 'arguments': {'city': 'Paris'}}</tool_call>", "get_weather", {"city": "Paris"}),
    ('<tool_call>{"name": "lookup_order", "parameters": {"order_id": 7}}</tool_call>', "lookup_order", {"order_id": 7}),
    ('<tool_call>{"name": "lookup_order", "arguments": "{\\"order_id\\": 7}"}</tool_call>', "lookup_order", {"order_id": 7}),
    ('<tool_call>```json\n{"name": "lookup_order", "arguments": {"order_id": 7}}\n```</tool_call>', "lookup_order", {"order_id": 7}),
    ('```json\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n```', "get_weather", {"city": "Oslo"}),  # bare
    ('{"name": "get_weather", "arguments": {"city": "Oslo"}} and some trailing words', None, None),  # text, not a call
])
def test_parsing_tolerates_common_mistakes(text, name, args):
    parsed = parse_tool_calls(text, ["get_weather", "lookup_order"])
    if name is None:
        assert not parsed.calls and not parsed.invalid and parsed.content == text
        return
    assert [(c.name, c.args) for c in parsed.calls] == [(name, args)]
    assert not parsed.invalid and parsed.content == ""


def test_unreadable_or_unknown_calls_become_invalid_calls_not_silence():
    text = ('Checking. <tool_call>{"name": "get_weather", "arguments": {"city": </tool_call>'
            '<tool_call>{"name": "delete_everything", "arguments": {}}</tool_call>'
            '<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>')
    parsed = parse_tool_calls(text, ["get_weather"])
    assert parsed.content == "Checking."
    assert [(c.name, c.args) for c in parsed.calls] == [("get_weather", {"city": "Rome"})]
    assert [c.name for c in parsed.invalid] == [None, "delete_everything"]
    assert "not valid JSON" in parsed.invalid[0].error and "unknown tool" in parsed.invalid[1].error
    assert len({c.id for c in [*parsed.calls, *parsed.invalid]}) == 3


def test_streaming_holds_back_only_what_may_be_a_tool_call():
    assert holdback("Hello <tool_c", True) == len("Hello ")
    assert holdback('Sure <tool_call>{"na', True) == len("Sure ")
    assert holdback('{"name": "x"', True) == 0
    assert holdback("a < b", True) == len("a < b")
    assert holdback("Hello <tool_c", False) == len("Hello <tool_c")


# ---- constrained decoding --------------------------------------------------------------------------
@tool
def lookup_order(order_id: int) -> str:
    """Status of an order."""
    return "shipped"


@tool
def create_ticket(subject: str, priority: str) -> str:
    """Open a support ticket."""
    return "ok"


def _ticket_schema() -> dict:
    from langchain_core.utils.function_calling import convert_to_openai_tool

    schema = convert_to_openai_tool(create_ticket)["function"]["parameters"]
    schema["properties"]["priority"]["enum"] = ["low", "normal", "high"]
    schema["properties"]["subject"]["maxLength"] = 24  # random weights never end a free string on their own
    return schema


def test_constrained_decoding_makes_a_random_model_write_schema_valid_calls(tiny_lm_dir):
    from langchain_core.utils.function_calling import convert_to_openai_tool

    ticket = convert_to_openai_tool(create_ticket)
    ticket["function"]["parameters"] = _ticket_schema()
    schemas = {"lookup_order": convert_to_openai_tool(lookup_order)["function"]["parameters"],
               "create_ticket": ticket["function"]["parameters"]}
    model = MMChatModel(config=tiny_config(tiny_lm_dir), max_tokens=120, temperature=1.0)
    valid = {True: 0, False: 0}
    for constrain in (True, False):
        bound = model.model_copy(update={"constrain_tool_calls": constrain}).bind_tools(
            [lookup_order, ticket], tool_choice="any")
        for seed in range(4):
            answer = bound.invoke("Open a ticket or look up order 3.", seed=seed)
            for call in answer.tool_calls:
                jsonschema.validate(call["args"], schemas[call["name"]])
            valid[constrain] += len(answer.tool_calls) == 1 and not answer.invalid_tool_calls
    assert valid == {True: 4, False: 0}


def test_streamed_tool_calls_match_invoked_ones_and_never_leak_as_text(tiny_llava_dir):
    model = MMChatModel(config=tiny_config(tiny_llava_dir), max_tokens=120)
    bound = model.bind_tools([lookup_order], tool_choice="lookup_order")
    invoked = bound.invoke("Where is order 3?")
    chunks = list(bound.stream("Where is order 3?"))
    assert all("<tool_call>" not in c.content for c in chunks)
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    assert [c["name"] for c in full.tool_calls] == ["lookup_order"]
    assert [c["args"] for c in full.tool_calls] == [c["args"] for c in invoked.tool_calls]
    assert isinstance(invoked.tool_calls[0]["args"]["order_id"], int)
    assert full.usage_metadata == invoked.usage_metadata


def test_tool_choice_must_name_a_bound_tool(tiny_llava_dir):
    model = MMChatModel(config=tiny_config(tiny_llava_dir))
    with pytest.raises(MMAgentError, match="lookup_order"):
        model.bind_tools([lookup_order], tool_choice="get_weather")
    assert json.loads(json.dumps(model._get_ls_params()))["ls_provider"] == "mmagent"
