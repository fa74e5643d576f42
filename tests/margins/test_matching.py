"""Auto-matching scores: pure functions, no database."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from margins.matching import (
    SUGGESTION_THRESHOLD,
    StripeSide,
    UsageSide,
    best_match,
    best_suggestion,
    exact_match,
    similarity,
)

text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)


def test_metadata_customer_id_is_an_exact_match():
    match = best_match(StripeSide("cus_1", name="Whatever", metadata_customer_id="12345"),
                       [UsageSide("acme", name="Whatever"), UsageSide("12345")])

    assert (match.external_id, match.confidence, match.exact, match.reason) == ("12345", 1, True, "metadata")


def test_stripe_id_on_the_usage_customer_is_an_exact_match():
    assert exact_match(StripeSide("cus_9"), [UsageSide("a", stripe_customer_id="cus_9")]).external_id == "a"
    assert exact_match(StripeSide("cus_9"), [UsageSide("cus_9")]).reason == "stripe_id"
    assert exact_match(StripeSide("cus_9", metadata_customer_id="missing"), [UsageSide("a")]) is None


def test_similar_names_and_emails_score_high_unrelated_low():
    assert similarity(StripeSide("c", email="AP@delta.io"), UsageSide("x", email="ap@delta.io")) == Decimal("0.95")
    assert similarity(StripeSide("c", name="Zeta Systems Inc."), UsageSide("zeta", name="Zeta Systems")) == Decimal(
        "0.90"
    )
    assert similarity(StripeSide("c", name="Acme Corporation"), UsageSide("acme-corp")) >= SUGGESTION_THRESHOLD
    assert similarity(StripeSide("c", email="billing@globex.com"), UsageSide("globex")) >= SUGGESTION_THRESHOLD
    unrelated = similarity(StripeSide("c", name="Completely Different"), UsageSide("zeta", name="Zeta"))
    assert unrelated < SUGGESTION_THRESHOLD


def test_best_suggestion_picks_the_most_similar_and_ignores_order():
    candidates = [UsageSide("acme-labs", name="Acme Labs"), UsageSide("acme", name="Acme")]
    stripe = StripeSide("cus_1", name="Acme")

    assert best_suggestion(stripe, candidates).external_id == "acme"
    assert best_suggestion(stripe, list(reversed(candidates))).external_id == "acme"
    assert best_suggestion(StripeSide("cus_2", name="Nothing Alike"), candidates) is None


@given(text, text, text, text, text, text)
def test_similarity_is_a_confidence_in_0_1(name_a, email_a, meta, external, name_b, email_b):
    score = similarity(StripeSide("cus_x", name=name_a, email=email_a, metadata_customer_id=meta),
                       UsageSide(external, name=name_b, email=email_b))

    assert Decimal(0) <= score <= Decimal(1)
    assert score == score.quantize(Decimal("0.01"))


@given(text, text)
def test_name_similarity_is_symmetric(left, right):
    assert similarity(StripeSide("c", name=left), UsageSide("", name=right)) == similarity(
        StripeSide("c", name=right), UsageSide("", name=left)
    )


def test_similarity_is_symmetric_on_the_counterexample_hypothesis_found():
    forward = similarity(StripeSide("c", name="002"), UsageSide("", name="2010"))
    backward = similarity(StripeSide("c", name="2010"), UsageSide("", name="002"))

    assert forward == backward
