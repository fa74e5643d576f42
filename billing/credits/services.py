"""Writes to the credit ledger, top-ups, auto top-up and spending limits.

Exactly-once rules, enforced by PostgreSQL rather than by hoping:
- a ledger entry is unique per (customer, kind, reference): a PaymentIntent is credited once, an
  invoice drawn down once, a lot expired once, however many status checks or webhooks race;
- deductions take a per-customer advisory lock for their transaction, so two of them cannot both
  draw the same remainder of a lot;
- an auto top-up attempt is unique per (customer, trigger_key), so a low balance is charged once.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import stripe
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.tasking import enqueue_on_commit
from billing.credits import arithmetic, payments
from billing.credits.models import (
    AutoTopUpAttempt,
    AutoTopUpConfig,
    CreditDraw,
    CreditEntry,
    SpendingLimit,
    StripePaymentAccount,
    TopUp,
)
from billing.credits.selectors import credit_lots, spendable_credit
from billing.recompute import queue_draft_recompute
from costcalc.money import MICRODOLLARS_PER_CENT
from events.models import Customer

logger = logging.getLogger(__name__)

# A pending auto top-up blocks new ones for this long: the charge task retries transient Stripe
# errors for about 16 minutes before it records a failure.
PENDING_ATTEMPT_WINDOW = timedelta(hours=1)
_LEDGER_LOCK_NAMESPACE = 0x7C4ED17  # first key of pg_advisory_xact_lock(int, int): "credit ledger"


class InsufficientCredit(Exception):
    """A deduction asked for more than the customer's usable credit."""


def lock_ledger(customer_id: int) -> None:
    """Serialize deductions (and invoice credit allocation) of one customer until the end of the
    current transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LEDGER_LOCK_NAMESPACE, customer_id])


# --- Ledger -------------------------------------------------------------------------------------


@transaction.atomic
def credit_add(
    *,
    customer: Customer,
    kind: str,
    amount_microdollars: int,
    reference: str,
    expires_at: datetime | None = None,
    description: str = "",
    created_by=None,
) -> tuple[CreditEntry, bool]:
    """Add credit (grant, top-up or positive adjustment) once per reference. Returns (entry, created);
    a second call with the same (customer, kind, reference) returns the first entry, unchanged."""
    if amount_microdollars <= 0:
        raise ValueError("credit added must be positive")
    if kind not in (CreditEntry.Kind.GRANT, CreditEntry.Kind.TOPUP, CreditEntry.Kind.ADJUSTMENT):
        raise ValueError(f"{kind} does not add credit")
    try:
        with transaction.atomic():
            entry = CreditEntry.objects.create(
                organization_id=customer.organization_id,
                customer=customer,
                kind=kind,
                amount_microdollars=amount_microdollars,
                reference=reference,
                expires_at=expires_at,
                description=description,
                created_by=created_by,
            )
    except IntegrityError:
        existing = CreditEntry.objects.filter(customer=customer, kind=kind, reference=reference).first()
        if existing is None:
            raise
        return existing, False
    _drafts_follow_credit(customer.pk)
    return entry, True


@transaction.atomic
def credit_deduct(
    *,
    customer: Customer,
    kind: str,
    amount_microdollars: int,
    reference: str,
    description: str = "",
    created_by=None,
    at: datetime | None = None,
    parts: list[tuple[object, int, str]] | None = None,
) -> tuple[CreditEntry, bool]:
    """Take credit (drawdown, negative adjustment) once per reference, from usable lots
    soonest-expiring first. `parts` may give the exact (lot id, microdollars, line key) split already
    computed by the caller (invoice drawdown); otherwise it is allocated here. Raises
    InsufficientCredit rather than letting the usable balance go negative."""
    if amount_microdollars <= 0:
        raise ValueError("amount to deduct must be positive")
    lock_ledger(customer.pk)
    existing = CreditEntry.objects.filter(customer=customer, kind=kind, reference=reference).first()
    if existing is not None:
        return existing, False
    at = at or timezone.now()
    lots = credit_lots(customer=customer)
    if parts is None:
        allocated = arithmetic.allocate(lots, amount_microdollars, at=at)
        parts = [(lot_id, amount, "") for lot_id, amount in allocated]
    usable = {lot.id: lot.remaining for lot in lots if lot.usable_at(at)}
    taken: dict[object, int] = {}
    for lot_id, amount, _ in parts:
        taken[lot_id] = taken.get(lot_id, 0) + amount
    if sum(taken.values()) != amount_microdollars or any(
        amount > usable.get(lot_id, 0) for lot_id, amount in taken.items()
    ):
        raise InsufficientCredit(
            f"{arithmetic.dollars(amount_microdollars)} USD is more than the usable credit "
            f"({arithmetic.dollars(sum(usable.values()))} USD)."
        )
    entry = CreditEntry.objects.create(
        organization_id=customer.organization_id,
        customer=customer,
        kind=kind,
        amount_microdollars=-amount_microdollars,
        reference=reference,
        description=description,
        created_by=created_by,
    )
    CreditDraw.objects.bulk_create(
        [CreditDraw(entry=entry, lot_id=lot_id, amount_microdollars=amount, line_key=line_key)
         for lot_id, amount, line_key in parts]
    )
    transaction.on_commit(lambda: queue_auto_topup_evaluation(customer.pk))
    _drafts_follow_credit(customer.pk)
    return entry, True


def _drafts_follow_credit(customer_id: int) -> None:
    """Once the credit change commits, the customer's drafts (credits applied, amount due, the invoice
    preview and customer page that read them) are recomputed: they no longer wait for more usage."""
    transaction.on_commit(partial(queue_draft_recompute, customer_ids=[customer_id]), robust=True)


def credit_adjust(
    *,
    customer: Customer,
    amount_microdollars: int,
    reference: str,
    description: str = "",
    expires_at: datetime | None = None,
    created_by=None,
) -> tuple[CreditEntry, bool]:
    """An operator's correction: positive adds a lot (may expire), negative draws from lots."""
    if amount_microdollars == 0:
        raise ValueError("an adjustment must not be zero")
    if amount_microdollars > 0:
        return credit_add(
            customer=customer, kind=CreditEntry.Kind.ADJUSTMENT, amount_microdollars=amount_microdollars,
            reference=reference, expires_at=expires_at, description=description, created_by=created_by,
        )
    if expires_at is not None:
        raise ValueError("only credit added can expire")
    return credit_deduct(
        customer=customer, kind=CreditEntry.Kind.ADJUSTMENT, amount_microdollars=-amount_microdollars,
        reference=reference, description=description, created_by=created_by,
    )


@transaction.atomic
def credits_expire(*, customer: Customer, at: datetime | None = None) -> list[CreditEntry]:
    """Write an expiry entry for every lot that has expired with something left (once per lot)."""
    at = at or timezone.now()
    lock_ledger(customer.pk)
    written = []
    for lot_id, remainder in arithmetic.expired_remainders(credit_lots(customer=customer), at=at):
        entry, created = _expiry_entry(customer=customer, lot_id=lot_id, remainder=remainder)
        if created:
            written.append(entry)
    if written:
        transaction.on_commit(lambda: queue_auto_topup_evaluation(customer.pk))
        _drafts_follow_credit(customer.pk)
    return written


def _expiry_entry(*, customer: Customer, lot_id, remainder: int) -> tuple[CreditEntry, bool]:
    reference = f"expiry:{lot_id}"
    existing = CreditEntry.objects.filter(customer=customer, kind=CreditEntry.Kind.EXPIRY, reference=reference).first()
    if existing is not None:
        return existing, False
    entry = CreditEntry.objects.create(
        organization_id=customer.organization_id,
        customer=customer,
        kind=CreditEntry.Kind.EXPIRY,
        amount_microdollars=-remainder,
        reference=reference,
        description="Unused credit expired",
    )
    CreditDraw.objects.create(entry=entry, lot_id=lot_id, amount_microdollars=remainder)
    return entry, True


def credits_expire_all(*, at: datetime | None = None) -> int:
    """Expire what is due for every customer (the hourly job). Returns entries written."""
    at = at or timezone.now()
    customer_ids = (
        CreditEntry.objects.filter(amount_microdollars__gt=0, expires_at__lte=at)
        .values_list("customer_id", flat=True)
        .distinct()
    )
    written = 0
    for customer in Customer.objects.filter(pk__in=list(customer_ids)):
        written += len(credits_expire(customer=customer, at=at))
    return written


# --- Stripe account -----------------------------------------------------------------------------


@transaction.atomic
def stripe_account_set(
    *, organization, secret_key: str | None = None, webhook_secret: str | None = None
) -> StripePaymentAccount:
    """Create or update the organization's Stripe account. None leaves a field as it is (a new account
    needs its secret key); `webhook_secret=""` removes the signing secret, which closes the
    organization's own webhook endpoint."""
    account = StripePaymentAccount.objects.select_for_update().filter(organization=organization).first()
    if account is None:
        if not secret_key:
            raise ValueError("A new Stripe payment account needs its secret key.")
        account = StripePaymentAccount(organization=organization)
    if secret_key is not None:
        account.secret_key = secret_key
        account.key_hint = secret_key[-4:]
        account.livemode = secret_key.startswith("sk_live_")
    if webhook_secret is not None:
        account.webhook_secret = webhook_secret or None
    account.save()
    return account


@transaction.atomic
def stripe_account_delete(*, organization) -> bool:
    deleted, _ = StripePaymentAccount.objects.filter(organization=organization).delete()
    return bool(deleted)


# --- Top-ups ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopUpCreated:
    topup: TopUp
    client_secret: str | None
    onboarding: bool
    card: payments.Card | None


def topup_create(*, customer: Customer, amount_cents: int) -> TopUpCreated:
    """Create a PaymentIntent for `amount_cents` USD of credit. With a saved default card it is
    charged at once (`onboarding` true: the customer was already onboarded); otherwise the client
    confirms it with `client_secret`, and the card is saved for auto top-ups when it succeeds."""
    client = payments.client_for(customer.organization)
    try:
        stripe_customer_id = payments.ensure_stripe_customer(client=client, customer=customer)
        card = payments.default_card(client=client, stripe_customer_id=stripe_customer_id)
        payment_intent = payments.create_payment_intent(
            client=client,
            amount_cents=amount_cents,
            stripe_customer_id=stripe_customer_id,
            metadata=_topup_metadata(customer, TopUp.Origin.MANUAL),
            card=card,
        )
    except stripe.CardError as exc:
        raise payments.CardDeclined(exc.user_message or str(exc), details={"decline_code": exc.code}) from exc
    except stripe.StripeError as exc:
        raise payments.StripeUnavailable(f"Stripe: {exc.user_message or exc}") from exc
    topup = TopUp.objects.create(
        organization_id=customer.organization_id,
        customer=customer,
        payment_intent_id=payment_intent["id"],
        amount_cents=amount_cents,
        currency="usd",
        origin=TopUp.Origin.MANUAL,
        stripe_status=payment_intent.get("status") or "",
    )
    if payment_intent.get("status") == "succeeded":
        topup_settle(payment_intent=payment_intent)
        topup.refresh_from_db()
    return TopUpCreated(
        topup=topup, client_secret=payment_intent.get("client_secret"), onboarding=card is not None, card=card
    )


def _topup_metadata(customer: Customer, origin: str) -> dict:
    return {
        "tokenledger_purpose": "credit_topup",
        "tokenledger_origin": origin,
        "tokenledger_organization_id": str(customer.organization_id),
        "customer_id": customer.external_id,
    }


def topup_refresh(*, customer: Customer, payment_intent_id: str) -> TopUp:
    """Ask Stripe about a top-up of this customer and credit it if it has succeeded."""
    topup = TopUp.objects.filter(customer=customer, payment_intent_id=payment_intent_id).first()
    if topup is None:
        from rest_framework.exceptions import NotFound

        raise NotFound(f"No top-up {payment_intent_id!r} for this customer.")
    if topup.status == TopUp.Status.COMPLETED:
        return topup
    client = payments.client_for(customer.organization)
    try:
        payment_intent = payments.retrieve_payment_intent(client=client, payment_intent_id=payment_intent_id)
    except stripe.StripeError as exc:
        raise payments.StripeUnavailable(f"Stripe: {exc.user_message or exc}") from exc
    return topup_settle(payment_intent=payment_intent)


def topup_settle(*, payment_intent: dict) -> TopUp:
    """Bring our top-up in line with its PaymentIntent (from a status check or a webhook).

    Succeeded: credit the customer once (the TopUp row is locked, and the ledger's unique reference
    would refuse a second entry anyway), then save the card for off-session charges. Failed or
    canceled: record why. Returns the top-up.
    """
    granted = False
    with transaction.atomic():
        topup = TopUp.objects.select_for_update(of=("self",)).select_related("customer").get(
            payment_intent_id=payment_intent["id"]
        )
        status = payment_intent.get("status") or ""
        topup.stripe_status = status
        mismatch = _mismatch(topup, payment_intent)
        if status == "succeeded" and topup.status != TopUp.Status.COMPLETED and mismatch:
            logger.error("top-up %s not credited: %s", topup.payment_intent_id, mismatch)
            topup.status = TopUp.Status.FAILED
            topup.error = mismatch
        elif status == "succeeded" and topup.status != TopUp.Status.COMPLETED:
            _, granted = credit_add(
                customer=topup.customer,
                kind=CreditEntry.Kind.TOPUP,
                amount_microdollars=topup.amount_cents * MICRODOLLARS_PER_CENT,
                reference=topup.payment_intent_id,
                description="Auto top-up" if topup.origin == TopUp.Origin.AUTO else "Top-up",
            )
            topup.status = TopUp.Status.COMPLETED
            topup.completed_at = timezone.now()
            topup.error = ""
            if topup.origin == TopUp.Origin.AUTO:
                _auto_topup_succeeded(topup)
        elif status in ("canceled", "requires_payment_method") and topup.status != TopUp.Status.COMPLETED:
            message = payments.payment_error_message(payment_intent)
            if status == "canceled" or message:
                topup.status = TopUp.Status.FAILED
                topup.error = message or "The payment was canceled."
                if topup.origin == TopUp.Origin.AUTO:
                    _auto_topup_failed_for(topup, topup.error)
        topup.save()
    if granted and topup.origin == TopUp.Origin.MANUAL and payment_intent.get("payment_method"):
        _save_card(topup, payment_intent)
    return topup


def _mismatch(topup: TopUp, payment_intent: dict) -> str:
    """Why a PaymentIntent cannot pay for this top-up ("" when it can)."""
    if payment_intent.get("amount") != topup.amount_cents or (payment_intent.get("currency") or "").lower() != "usd":
        return (
            f"The PaymentIntent is for {payment_intent.get('amount')} {payment_intent.get('currency')}, "
            f"the top-up for {topup.amount_cents} usd."
        )
    expected_customer = topup.customer.stripe_customer_id
    if expected_customer and payment_intent.get("customer") not in (None, expected_customer):
        return "The PaymentIntent belongs to another Stripe customer."
    return ""


def _save_card(topup: TopUp, payment_intent: dict) -> None:
    payment_method = payment_intent["payment_method"]
    if isinstance(payment_method, dict):
        payment_method = payment_method["id"]
    try:
        client = payments.client_for(topup.customer.organization)
        payments.remember_card(
            client=client, stripe_customer_id=payment_intent["customer"], payment_method_id=payment_method
        )
    except (stripe.StripeError, payments.StripeNotConfigured):
        # The credit is granted either way; without a saved card auto top-up reports "no card".
        logger.warning("could not save the card of top-up %s as default", topup.payment_intent_id, exc_info=True)


# --- Auto top-up --------------------------------------------------------------------------------


@transaction.atomic
def auto_topup_config_set(*, customer: Customer, amount_microdollars: int, threshold_microdollars: int):
    """Set (or replace) the auto top-up; setting it again clears failures and re-enables it."""
    config = AutoTopUpConfig.objects.select_for_update().filter(customer=customer).first()
    if config is None:
        config = AutoTopUpConfig(organization_id=customer.organization_id, customer=customer, revision=0)
    config.amount_microdollars = amount_microdollars
    config.threshold_microdollars = threshold_microdollars
    config.error = ""
    config.disabled_reason = ""
    config.consecutive_failures = 0
    config.revision += 1
    config.save()
    transaction.on_commit(lambda: queue_auto_topup_evaluation(customer.pk))
    return config


@transaction.atomic
def auto_topup_config_delete(*, customer: Customer) -> bool:
    deleted, _ = AutoTopUpConfig.objects.filter(customer=customer).delete()
    return bool(deleted)


def queue_auto_topup_evaluation(customer_id: int) -> None:
    """After the balance went down (on commit): evaluate the auto top-up if the customer has one."""
    if AutoTopUpConfig.objects.filter(customer_id=customer_id, disabled_reason="").exists():
        auto_topup_evaluate(customer=Customer.objects.get(pk=customer_id))


@transaction.atomic
def auto_topup_evaluate(*, customer: Customer, at: datetime | None = None) -> AutoTopUpAttempt | None:
    """Decide whether the customer's balance calls for an auto top-up, and queue one charge if so.

    The trigger key names the situation (the config, its failure count, the last credit added), so
    every evaluation of the same low balance maps to the same attempt row, created at most once;
    after a success the newest addition changes the key, after a failure the count does.
    """
    at = at or timezone.now()
    config = AutoTopUpConfig.objects.select_for_update().filter(customer=customer).first()
    if config is None:
        return None
    balance = spendable_credit(customer=customer, at=at)
    if not arithmetic.auto_topup_due(
        balance=balance,
        threshold=config.threshold_microdollars,
        amount=config.amount_microdollars,
        active=config.active,
    ):
        return None
    if config.last_failed_at and at - config.last_failed_at < timedelta(seconds=settings.AUTO_TOPUP_RETRY_SECONDS):
        return None
    in_flight = AutoTopUpAttempt.objects.filter(
        customer=customer, status=AutoTopUpAttempt.Status.PENDING, created_at__gte=at - PENDING_ATTEMPT_WINDOW
    )
    if in_flight.exists():  # one charge at a time (an attempt stuck longer than the window no longer blocks)
        return None
    last_addition = (
        CreditEntry.objects.filter(customer=customer, amount_microdollars__gt=0)
        .order_by("-created_at", "-id")
        .values_list("id", flat=True)
        .first()
    )
    trigger_key = (
        f"config:{config.pk}:rev:{config.revision}:failures:{config.consecutive_failures}:after:{last_addition}"
    )
    try:
        with transaction.atomic():
            attempt = AutoTopUpAttempt.objects.create(
                organization_id=customer.organization_id,
                customer=customer,
                trigger_key=trigger_key,
                amount_microdollars=config.amount_microdollars,
                balance_microdollars=balance,
            )
    except IntegrityError:
        return None
    enqueue_on_commit("billing.tasks.credit_auto_topup_charge", args=[attempt.pk])
    return attempt


def auto_topup_charge(*, attempt_id: int) -> AutoTopUpAttempt:
    """Charge the saved card off-session for one attempt. Running it twice changes nothing: a
    finished attempt is left alone and Stripe sees the same idempotency key."""
    attempt = AutoTopUpAttempt.objects.select_related("customer__organization").get(pk=attempt_id)
    if attempt.status != AutoTopUpAttempt.Status.PENDING or attempt.topup_id is not None:
        return attempt
    customer = attempt.customer
    amount_cents = attempt.amount_microdollars // MICRODOLLARS_PER_CENT
    try:
        client = payments.client_for(customer.organization)
    except payments.StripeNotConfigured as exc:
        return _auto_topup_failed(attempt, str(exc.detail))
    if not customer.stripe_customer_id:
        return _auto_topup_failed(attempt, "The customer has no saved payment method.")
    try:
        card = payments.default_card(client=client, stripe_customer_id=customer.stripe_customer_id)
        if card is None:
            return _auto_topup_failed(attempt, "The customer has no saved payment method.")
        payment_intent = payments.create_payment_intent(
            client=client,
            amount_cents=amount_cents,
            stripe_customer_id=customer.stripe_customer_id,
            metadata={**_topup_metadata(customer, TopUp.Origin.AUTO), "tokenledger_attempt_id": str(attempt.pk)},
            card=card,
            off_session=True,
            idempotency_key=f"tokenledger-auto-topup-{attempt.pk}",
        )
    except (stripe.APIConnectionError, stripe.RateLimitError):
        raise  # transient: the task retries with the same idempotency key
    except stripe.StripeError as exc:  # declined, invalid card, revoked key: record and stop
        return _auto_topup_failed(attempt, exc.user_message or str(exc))
    with transaction.atomic():
        topup, _ = TopUp.objects.get_or_create(
            payment_intent_id=payment_intent["id"],
            defaults={
                "organization_id": customer.organization_id,
                "customer": customer,
                "amount_cents": amount_cents,
                "origin": TopUp.Origin.AUTO,
                "stripe_status": payment_intent.get("status") or "",
            },
        )
        AutoTopUpAttempt.objects.filter(pk=attempt.pk).update(topup=topup)
    status = payment_intent.get("status")
    if status == "requires_action":
        # Off-session charges cannot ask the cardholder to authenticate: give this one up.
        try:
            payments.cancel_payment_intent(client=client, payment_intent_id=payment_intent["id"])
        except stripe.StripeError:
            logger.warning("could not cancel PaymentIntent %s", payment_intent["id"], exc_info=True)
        TopUp.objects.filter(pk=topup.pk).update(status=TopUp.Status.FAILED, stripe_status="canceled",
                                                 error="The card requires authentication.")
        return _auto_topup_failed(attempt, "The card requires authentication; charge it while the customer is present.")
    if status in ("succeeded", "requires_payment_method", "canceled"):
        topup_settle(payment_intent=payment_intent)
    attempt.refresh_from_db()
    return attempt


def auto_topup_give_up(*, attempt_id: int, message: str) -> AutoTopUpAttempt:
    """The task ran out of retries: record the attempt as failed (counts towards disabling)."""
    return _auto_topup_failed(AutoTopUpAttempt.objects.get(pk=attempt_id), message)


def _auto_topup_succeeded(topup: TopUp) -> None:
    """Inside topup_settle's transaction: the attempt succeeded and the failure streak ends."""
    AutoTopUpAttempt.objects.filter(topup=topup).update(
        status=AutoTopUpAttempt.Status.SUCCEEDED, finished_at=timezone.now(), error=""
    )
    AutoTopUpConfig.objects.filter(customer_id=topup.customer_id).update(consecutive_failures=0, error="")


def _auto_topup_failed_for(topup: TopUp, message: str) -> None:
    attempt = AutoTopUpAttempt.objects.filter(topup=topup, status=AutoTopUpAttempt.Status.PENDING).first()
    if attempt is not None:
        _auto_topup_failed(attempt, message)


@transaction.atomic
def _auto_topup_failed(attempt: AutoTopUpAttempt, message: str) -> AutoTopUpAttempt:
    """Record a failed charge on the attempt and the config; disable after too many in a row."""
    now = timezone.now()
    updated = AutoTopUpAttempt.objects.filter(pk=attempt.pk, status=AutoTopUpAttempt.Status.PENDING).update(
        status=AutoTopUpAttempt.Status.FAILED, error=message, finished_at=now
    )
    if updated:
        config = AutoTopUpConfig.objects.select_for_update().filter(customer_id=attempt.customer_id).first()
        if config is not None:
            config.error = message
            config.last_failed_at = now
            config.consecutive_failures += 1
            if arithmetic.failure_disables(
                consecutive_failures=config.consecutive_failures, max_failures=settings.AUTO_TOPUP_MAX_FAILURES
            ):
                config.disabled_reason = (
                    f"Disabled after {config.consecutive_failures} failed charges in a row; set the "
                    "configuration again to re-enable it."
                )
            config.save()
    attempt.refresh_from_db()
    return attempt


# --- Spending limits ----------------------------------------------------------------------------


@transaction.atomic
def spending_limit_set(
    *, customer: Customer, amount_microdollars: int, duration: str, strategy: str, enabled: bool = True
) -> SpendingLimit:
    limit, _ = SpendingLimit.objects.update_or_create(
        customer=customer,
        defaults={
            "organization_id": customer.organization_id,
            "amount_microdollars": amount_microdollars,
            "duration": duration,
            "strategy": strategy,
            "enabled": enabled,
        },
    )
    organization = customer.organization
    transaction.on_commit(lambda: blocklist_recompute(organization=organization))
    return limit


@transaction.atomic
def spending_limit_delete(*, customer: Customer) -> bool:
    deleted, _ = SpendingLimit.objects.filter(customer=customer).delete()
    organization = customer.organization
    transaction.on_commit(lambda: blocklist_recompute(organization=organization))
    return bool(deleted)


def blocklist_recompute(*, organization) -> None:
    """Ask events to recompute its blocklist (it bumps the version only if the blocked set changed)."""
    from events.services import blocklist_recompute as recompute

    recompute(organization=organization)
