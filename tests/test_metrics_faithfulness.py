"""The faithfulness metric: facts (numbers, amounts, dates, proper names) an output states that none of its
sources holds. Cases that must be flagged, cases that must not, and the runner's hook."""

from __future__ import annotations

import pytest

from mmagent.facts import disagrees, extract, unsupported

SOURCE = "Express shipping takes one business day and costs 12 euros. Orders are packed by Clara Hesketh in Ormond."


@pytest.mark.parametrize("output, flagged", [
    ("Express shipping costs 15 euros.", ["15"]),  # invented amount
    ("It costs €12.50.", ["12.5"]),  # an amount close to the source's is still another amount
    ("Orders are packed by Maria Lopez.", ["lopez", "maria"]),  # invented name
    ("It arrives on 3 March.", ["3", "march"]),  # invented date
    ("Shipping is run by DHL for 12 euros.", ["dhl"]),  # invented acronym
    ("It was founded in 1998 by Clara Hesketh.", ["1998"]),
    ("Packed by Clara Hesketh [1] in Ormond; it costs twelve euros.", []),  # "twelve" is 12; [1] is no number
    ("Express shipping costs 12 euros [1].", []),
    ("The packer is hesketh, who works in ormond.", []),  # lower case is still the source's name
    ("Orders ship the next business day.", []),  # sentence-initial capital is no name claim
    ("I don't know.", []),
    ("", []),
    ("The assistant may grant refunds; customers march in at 9.", ["9"]),  # the modal and the verb are no dates
    ("It arrives in May.", ["may"]),  # the month, capitalised mid-sentence
])
def test_unsupported_facts(output, flagged):
    assert unsupported(output, [SOURCE]) == flagged


def test_question_and_image_text_count_as_sources():
    assert unsupported("Order 1002 ships Monday.", [SOURCE]) == ["1002", "monday"]
    assert unsupported("Order 1002 ships Monday.", [SOURCE, "Where is order 1002?", "OCR: Monday"]) == []


def test_extraction_normalises_numbers_and_skips_abbreviation_full_stops():
    facts = extract("It costs 1,200.50 euros; Mr. Okafor paid 30% on the 2nd, at 8:30.")
    assert facts.numbers == {"1200.5", "30", "2", "8:30"}
    assert facts.names == {"okafor"}


def test_disagreement_is_same_kind_different_value():
    assert disagrees("It costs 15 euros.", "Express shipping costs 12 euros.")
    assert not disagrees("It costs 12 euros.", "Express shipping costs 12 euros or 20 on Saturdays.")
    assert not disagrees("It costs 15 euros.", "The office cat is called Miso.")  # silent on numbers
    assert disagrees("Clara Hesketh packs them.", "Orders are packed by Tom Reyes.")


def test_metric_is_the_share_of_outputs_with_an_unsupported_fact():
    from mmagent.evals.metrics.faithfulness import score_faithfulness

    outputs = {"a": "It costs 12 euros.", "b": "It costs 15 euros and 20 for Maria.", "c": ""}
    result = score_faithfulness(outputs, {k: [SOURCE] for k in ("a", "b", "c", "d")})
    assert result.metrics() == {"unsupported_claim_rate": 0.25, "unsupported_facts": 0.75}
    assert result.examples[1].references == ("15", "20", "maria") and result.missing == ["d"]
    assert result.higher_is_better is False
    ci = result.confidence_interval(n_resamples=200, seed=0)
    assert 0.0 <= ci.low <= 0.25 <= ci.high <= 1.0


def test_runner_adds_faithfulness_to_generating_suites_only():
    from mmagent.evals.dataset import load_examples
    from mmagent.evals.runner import faithfulness_section
    from mmagent.evals.suite import load_suite

    squad = load_suite("squad_mini")
    examples = load_examples(squad, None)[:2]
    invented = {examples[0].id: "It happened in 1066 in Normandy.", examples[1].id: examples[1].references[0]}
    section = faithfulness_section(squad, examples, invented)["faithfulness"]
    assert section.metrics()["unsupported_claim_rate"] == 0.5
    assert faithfulness_section(load_suite("retrieval_mini"), examples, {}) == {}
    qa = load_suite("qa_extractive")
    qa_examples = load_examples(qa, None)[:1]
    declined = {qa_examples[0].id: {"answer": "I don't know (best match 0.21, threshold 0.35).", "answered": False,
                                    "ranked": []}}
    assert faithfulness_section(qa, qa_examples, declined)["faithfulness"].metrics()["unsupported_claim_rate"] == 0
