"""Auto-matching Stripe customers to usage customers: pure functions over plain data.

Exact links (confidence 1, mapped as active automatically):
- the Stripe customer's `metadata.customer_id` equals a usage customer's external id (MarginDash's
  documented linking), or
- a usage customer already carries that Stripe customer id (`stripe_customer_id`) or uses it as
  its external id.

Otherwise a similarity score in [0, 1] proposes a *pending* match for an operator to approve:
the best of
- equal e-mail addresses (case-insensitive): 0.95;
- equal normalized names: 0.9;
- difflib ratio between normalized strings (name ↔ name, name ↔ external id, e-mail local part or
  domain label ↔ external id, Stripe metadata.customer_id ↔ external id), scaled by 0.9 so a fuzzy
  match never looks as sure as an equal e-mail;
- token overlap (Jaccard) between the names' words, scaled by 0.85.
Scores below `SUGGESTION_THRESHOLD` are not proposed. Confidence is rounded half up to 2 places.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from difflib import SequenceMatcher

from costcalc.money import ROUNDING

SUGGESTION_THRESHOLD = Decimal("0.60")
EMAIL_EQUAL = Decimal("0.95")
NAME_EQUAL = Decimal("0.90")
FUZZY_SCALE = Decimal("0.90")
TOKEN_SCALE = Decimal("0.85")
_PLACES = Decimal("0.01")
_CORPORATE_WORDS = frozenset(
    ["inc", "llc", "ltd", "corp", "co", "gmbh", "sa", "sas", "bv", "plc", "limited", "company", "corporation", "the"]
)


@dataclass(frozen=True)
class StripeSide:
    stripe_id: str
    name: str = ""
    email: str = ""
    metadata_customer_id: str = ""


@dataclass(frozen=True)
class UsageSide:
    external_id: str
    name: str = ""
    email: str = ""
    stripe_customer_id: str = ""


@dataclass(frozen=True)
class Match:
    external_id: str
    confidence: Decimal
    exact: bool
    reason: str  # "metadata", "stripe_id" or "similarity"


def tokens(text: str) -> list[str]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return [word for word in words if word not in _CORPORATE_WORDS]


def normalize(text: str) -> str:
    return "".join(tokens(text))


def _ratio(left: str, right: str) -> Decimal:
    if not left or not right:
        return Decimal(0)
    matcher = SequenceMatcher(None, left, right, autojunk=False)
    if matcher.real_quick_ratio() < 0.5:  # cheap upper bound: cannot reach the threshold after scaling
        return Decimal(0)
    # SequenceMatcher's ratio depends on argument order ("002" vs "2010": 0.57 one way, 0.29 the
    # other); the better of both directions makes the score symmetric.
    reverse = SequenceMatcher(None, right, left, autojunk=False)
    return Decimal(str(round(max(matcher.ratio(), reverse.ratio()), 6)))


def _email_parts(email: str) -> list[str]:
    if "@" not in email:
        return []
    local, _, domain = email.lower().partition("@")
    labels = [label for label in domain.split(".")[:-1] if label not in {"mail", "billing", "www"}]
    return [normalize(local), *(normalize(label) for label in labels)]


def similarity(stripe: StripeSide, usage: UsageSide) -> Decimal:
    """How alike two customers look, in [0, 1], rounded half up to 2 places. Symmetric in names."""
    scores = [Decimal(0)]
    if stripe.email and usage.email and stripe.email.strip().lower() == usage.email.strip().lower():
        scores.append(EMAIL_EQUAL)
    stripe_name, usage_name = normalize(stripe.name), normalize(usage.name)
    if stripe_name and stripe_name == usage_name:
        scores.append(NAME_EQUAL)
    external = normalize(usage.external_id)
    pairs = [(stripe_name, usage_name), (stripe_name, external), (normalize(stripe.metadata_customer_id), external)]
    pairs += [(part, external) for part in _email_parts(stripe.email)]
    scores += [_ratio(left, right) * FUZZY_SCALE for left, right in pairs]
    left_tokens, right_tokens = set(tokens(stripe.name)), set(tokens(usage.name))
    if left_tokens and right_tokens:
        jaccard = Decimal(len(left_tokens & right_tokens)) / Decimal(len(left_tokens | right_tokens))
        scores.append(jaccard * TOKEN_SCALE)
    return min(Decimal(1), max(scores)).quantize(_PLACES, rounding=ROUNDING)


def exact_match(stripe: StripeSide, candidates: Iterable[UsageSide]) -> Match | None:
    """The exact link for ``stripe``: metadata.customer_id first, then a usage customer holding its Stripe id."""
    candidates = list(candidates)
    wanted = stripe.metadata_customer_id.strip()
    if wanted:
        for usage in candidates:
            if usage.external_id == wanted:
                return Match(usage.external_id, Decimal(1), True, "metadata")
    for usage in candidates:
        if stripe.stripe_id in (usage.stripe_customer_id, usage.external_id):
            return Match(usage.external_id, Decimal(1), True, "stripe_id")
    return None


def best_suggestion(stripe: StripeSide, candidates: Iterable[UsageSide]) -> Match | None:
    """The most similar candidate scoring at least the threshold; ties go to the smallest external id,
    so the result does not depend on the candidates' order."""
    best: Match | None = None
    for usage in sorted(candidates, key=lambda u: u.external_id):
        score = similarity(stripe, usage)
        if score >= SUGGESTION_THRESHOLD and (best is None or score > best.confidence):
            best = Match(usage.external_id, score, False, "similarity")
    return best


def best_match(stripe: StripeSide, candidates: Iterable[UsageSide]) -> Match | None:
    candidates = list(candidates)
    return exact_match(stripe, candidates) or best_suggestion(stripe, candidates)
