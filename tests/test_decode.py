"""Decoding paths on tiny random-weight checkpoints: the streamed text is bare greedy `generate`'s text,
and assisted generation (`model.draft_id`) leaves greedy output unchanged while the draft really drafts."""

from __future__ import annotations

import pytest

from conftest import tiny_config
from mmagent.errors import ModelLoadError
from mmagent.model.backend import HFVisionBackend, _generate_kwargs

QUESTION = [{"role": "user", "content": "Tell me a story about a red square and a blue circle."}]


@pytest.fixture(scope="module")
def backend(tiny_llava_dir):
    return HFVisionBackend(tiny_config(tiny_llava_dir))


@pytest.fixture(scope="module")
def draft_dir(tmp_path_factory):
    from helpers.tiny import build_tiny_llava

    return build_tiny_llava(tmp_path_factory.mktemp("tiny-draft"), seed=1)  # same tokenizer, other weights


@pytest.mark.parametrize("penalty", [1.0, 1.3])
def test_streamed_text_is_bare_greedy_generate(backend, penalty):
    opts = backend.options({"max_new_tokens": 24, "repetition_penalty": penalty})
    inputs = backend.prepare(QUESTION)
    ids = backend.model.generate(**inputs, **_generate_kwargs(opts, backend.tokenizer))[0, inputs["input_ids"].shape[1]:]
    pieces = list(backend.generate(QUESTION, max_new_tokens=24, repetition_penalty=penalty))
    assert len(pieces) >= 2
    assert "".join(pieces) == backend.tokenizer.decode(ids, skip_special_tokens=True)


def test_assisted_generation_keeps_greedy_output(tiny_llava_dir, draft_dir, backend):
    assisted = HFVisionBackend(tiny_config(tiny_llava_dir, **{"model.draft_id": str(draft_dir)}))
    assert assisted.draft is not None
    calls = []
    hook = assisted.draft.register_forward_hook(lambda *args: calls.append(1))
    try:
        for penalty in (1.0, 1.3):
            gen = {"max_new_tokens": 24, "repetition_penalty": penalty}
            assert assisted.generate_ids(QUESTION, **gen) == backend.generate_ids(QUESTION, **gen)
            assert assisted.complete(QUESTION, **gen) == backend.complete(QUESTION, **gen)
    finally:
        hook.remove()
    assert calls, "the draft model never ran: generation was not assisted"


def test_a_draft_with_another_tokenizer_drafts_greedy_requests_only(tiny_llava_dir, tmp_path, backend):
    from helpers.tiny import build_tiny_llava

    other = build_tiny_llava(tmp_path / "other", seed=2, extra_tokens=("<an-extra-token>", "<another-one>"))
    assisted = HFVisionBackend(tiny_config(tiny_llava_dir, **{"model.draft_id": str(other), "model.draft_tokens": 3}))
    assert assisted.draft_tokenizer is not None
    assert assisted.draft.generation_config.num_assistant_tokens == 3
    calls = []
    hook = assisted.draft.register_forward_hook(lambda *args: calls.append(1))
    try:
        gen = {"max_new_tokens": 24, "repetition_penalty": 1.3}
        assert assisted.generate_ids(QUESTION, **gen) == backend.generate_ids(QUESTION, **gen)
        assert assisted.complete(QUESTION, **gen) == backend.complete(QUESTION, **gen)
        assert calls, "the draft model never ran: generation was not assisted"
        calls.clear()
        head = assisted.draft.get_output_embeddings().weight.shape
        list(assisted.generate(QUESTION, max_new_tokens=8, temperature=0.7, seed=1))
        assert not calls, "a sampled request was drafted across vocabularies"
        assert assisted.draft.get_output_embeddings().weight.shape == head
    finally:
        hook.remove()


def test_a_reused_system_prompt_cache_keeps_greedy_output(tiny_llava_dir):
    backend = HFVisionBackend(tiny_config(tiny_llava_dir))
    system = {"role": "system", "content": "You answer in short sentences about shapes and colours, always politely."}
    gen = {"max_new_tokens": 16, "repetition_penalty": 1.3}
    for question in ("What is red?", "Name a blue shape.", "What is red?"):
        messages = [system, {"role": "user", "content": question}]
        plain = backend.tokenizer.decode(backend.generate_ids(messages, **gen), skip_special_tokens=True)
        assert backend.complete(messages, **gen) == plain  # generate_ids never reuses a cache
    assert len(backend.prefixes._caches) == 1, "the system prompt was not prefilled once and reused"


def test_a_draft_whose_tokens_differ_at_the_same_vocabulary_size_is_refused(tiny_llava_dir, tmp_path):
    from transformers import AutoTokenizer

    from helpers.tiny import build_tiny_llava

    other = build_tiny_llava(tmp_path / "other", seed=2)
    tok = AutoTokenizer.from_pretrained(other)
    tok.add_tokens(["<an-extra-token>"])  # the tokenizer changes, the model's vocabulary size does not
    tok.save_pretrained(other)
    with pytest.raises(ModelLoadError, match="another tokenizer"):
        HFVisionBackend(tiny_config(tiny_llava_dir, **{"model.draft_id": str(other)}))
