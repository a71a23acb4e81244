"""Extractive decoding on a tiny random-weight model: whatever the weights say, the answer is a verbatim
span of a passage (sampled at high temperature, batched, and with the space-less first-token variants)."""

from __future__ import annotations

import pytest
from conftest import tiny_config

from mmagent.model.extractive import SpanIndex, SpanLogitsProcessor, end_token_ids, locate

PASSAGES = [
    "Express shipping takes one business day and costs 12 euros.",
    "The office cat is called Miso and sleeps on the printer; the café opens at 8:30.",
    "Returns are accepted within 30 days of delivery, order 1234 excepted.",
]


@pytest.fixture(scope="module")
def backend(tiny_lm_dir):
    from mmagent.model.backend import HFVisionBackend

    return HFVisionBackend(tiny_config(tiny_lm_dir, **{"model.max_new_tokens": 20}))


def _messages(question: str) -> list[dict]:
    return [{"role": "user", "content": "\n".join(PASSAGES) + f"\nQuestion: {question}"}]


def test_every_sampled_answer_is_a_verbatim_passage_span(backend):
    answers = set()
    for seed in range(12):
        text = backend.complete(_messages("How long?"), spans_from=tuple(PASSAGES), temperature=1.5, seed=seed)
        answers.add(text)
        span = locate(text, PASSAGES)
        assert text.strip() == "" or (span is not None and PASSAGES[span.passage][span.start:span.end] == span.text)
    assert len(answers) > 3  # the constraint leaves the model real choices


def test_unconstrained_random_weights_leave_the_passages(backend):
    """The control: without the constraint the same model writes text found in no passage."""
    texts = [backend.complete(_messages("How long?"), temperature=1.5, seed=s) for s in range(6)]
    assert any(t.strip() and locate(t, PASSAGES) is None for t in texts)


def test_batched_greedy_answers_are_spans_too(backend):
    questions = [_messages(q) for q in ("Who?", "When does the café open?", "How much is express shipping?")]
    for text in backend.generate_batch(questions, spans_from=tuple(PASSAGES)):
        assert text.strip() == "" or locate(text, PASSAGES) is not None


def test_first_token_may_drop_its_leading_space_and_then_must_continue_the_passage(tiny_lm_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    index = SpanIndex(tok, ["the cat sat"])
    spaced = tok(" cat", add_special_tokens=False)["input_ids"]
    bare = tok("cat", add_special_tokens=False)["input_ids"]
    if len(spaced) == 1 and len(bare) == 1:  # the variant exists in this vocabulary
        assert bare[0] in index.first() and spaced[0] in index.first()
        live = index.advance(None, bare[0])
        assert index.allowed(live) - set(index.end_ids) == {tok(" sat", add_special_tokens=False)["input_ids"][0]}
    ids = index.tokens[0]
    assert ids[0] not in index.first()  # "the" is a function word: no answer starts with it
    first = min(i for where in index.starts.values() for _, i in where) - 1
    assert tok.decode(ids[first:]).strip() == "cat sat"
    live = None
    for t in ids[first:]:  # "cat sat" is one allowed path, after which only the end is
        assert t in index.allowed(live)
        live = index.advance(live, t)
    assert index.allowed(live) == set(index.end_ids)


def test_spans_start_at_words_not_asked_and_end_before_clause_punctuation(tiny_lm_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    text = "Pepper eats carrots, apples and 6.1 kg of hay. Miso sleeps."
    index = SpanIndex(tok, [text], skip=["pepper", "eats"])
    starting_words = set()
    for where in index.starts.values():
        for p, i in where:
            c = index_offsets(tok, text)[i - 1][0]
            starting_words.add(text[c:].split()[0].strip(".,"))
    # only in the sentence that shares the question's words (its "6.1" no longer ends it: "Miso sleeps." is out)
    assert starting_words == {"carrots", "apples", "6.1", "kg", "hay"}
    offsets = index_offsets(tok, text)
    at = next(i for i, (a, b) in enumerate(offsets) if a <= text.index("carrots") < b)
    live = index.advance(None, index.tokens[0][at])
    while index.allowed(live) - set(index.end_ids):  # follow the passage as far as the constraint allows
        live = index.advance(live, next(iter(index.allowed(live) - set(index.end_ids))))
    (p, i), = live
    assert tok.decode(index.tokens[0][at:i]).strip() == "carrots"  # the comma ends the clause


def index_offsets(tok, text):
    return tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]


def test_processor_masks_to_the_allowed_tokens_and_ends_once_ended(tiny_lm_dir):
    import torch
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    proc = SpanLogitsProcessor(tok, ["hello world"])
    prompt = torch.tensor([[1, 2, 3]])
    scores = proc(prompt, torch.zeros(1, len(tok)))
    allowed = set(torch.nonzero(scores[0] > float("-inf")).flatten().tolist())
    assert allowed == proc.index.allowed(None)
    end = end_token_ids(tok)[0]
    scores = proc(torch.tensor([[1, 2, 3, end]]), torch.zeros(1, len(tok)))
    assert set(torch.nonzero(scores[0] > float("-inf")).flatten().tolist()) == set(end_token_ids(tok))


def test_refuses_no_passages(tiny_lm_dir):
    from transformers import AutoTokenizer

    with pytest.raises(ValueError, match="at least one non-empty passage"):
        SpanLogitsProcessor(AutoTokenizer.from_pretrained(tiny_lm_dir), ["  "])


def test_locate_gives_passage_and_offsets():
    span = locate(" 12 euros", PASSAGES)
    assert span is not None and (span.passage, PASSAGES[0][span.start:span.end]) == (0, "12 euros")
    assert locate("", PASSAGES) is None and locate("Paris", PASSAGES) is None


def test_no_answer_reply_is_offered_first_and_then_forced_to_its_end(tiny_lm_dir):
    """With `none`, the first step may also start the no-answer reply; once started, only its next token
    (then the end) is allowed, so "unknown" can neither be cut short nor grow into other text."""
    import torch
    from transformers import AutoTokenizer

    from mmagent.model.extractive import is_none

    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    proc = SpanLogitsProcessor(tok, ["hello world"], none="unknown")
    reply = tok("unknown", add_special_tokens=False)["input_ids"]
    prompt = [1, 2, 3]

    def allowed(generated: list[int]) -> set[int]:
        scores = proc(torch.tensor([prompt + generated]), torch.zeros(1, len(tok)))
        return set(torch.nonzero(scores[0] > float("-inf")).flatten().tolist())

    capital = tok("Unknown", add_special_tokens=False)["input_ids"]
    assert allowed([]) == proc.index.allowed(None) | {reply[0], capital[0]}
    for i in range(1, len(reply)):
        assert allowed(reply[:i]) == {reply[i]}
    assert allowed(reply) == set(end_token_ids(tok))
    assert is_none(tok.decode(reply), "unknown") and is_none(" Unknown.", "unknown")
    assert not is_none("hello", "unknown") and not is_none("unknown", "")


def test_without_none_the_reply_cannot_be_written(tiny_lm_dir):
    import torch
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    reply = tok("unknown", add_special_tokens=False)["input_ids"]
    proc = SpanLogitsProcessor(tok, ["hello world"])
    scores = proc(torch.tensor([[1, 2, 3]]), torch.zeros(1, len(tok)))
    assert scores[0, reply[0]] == float("-inf")


def test_sampled_answers_with_none_are_whole_spans_or_the_whole_reply(backend):
    """Through `generate` at high temperature: never a cut-short "unk", never the reply run on into text."""
    from mmagent.model.extractive import is_none

    for seed in range(8):
        text = backend.complete(_messages("Who?"), spans_from=tuple(PASSAGES), span_none="unknown",
                                temperature=1.5, seed=seed)
        assert not text.strip() or is_none(text, "unknown") or locate(text, PASSAGES) is not None, text


def test_the_no_answer_bias_tips_a_close_first_step_towards_declining(tiny_lm_dir):
    """`none_bias` is added to the no-answer reply's first token only at the first step: a span start that
    beats "unknown" by less than the bias loses, one that beats it by more still wins."""
    import torch
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    passages = ["Express shipping costs 12 euros."]
    for bias, margin, declines in ((0.5, 0.3, True), (0.5, 0.8, False), (0.0, 0.3, False)):
        processor = SpanLogitsProcessor(tok, passages, none="unknown", none_bias=bias)
        start = sorted(processor.index.first() - set(processor.index.end_ids))[0]
        nones = {reply[0] for reply in processor.nones}  # "unknown" and "Unknown"
        scores = torch.zeros(1, len(tok))
        scores[0, start] = margin
        out = processor(torch.tensor([[0]]), scores)
        assert (int(out[0].argmax()) in nones) is declines, (bias, margin)
