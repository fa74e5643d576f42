from datetime import timedelta

from django.utils import timezone

from billing import invoicing, receivers, services
from events.models import UsageEvent
from events.signals import usage_recorded
from tests.factories import CustomerFactory


def test_usage_recorded_schedules_a_recompute_only_for_customers_with_a_contract(
    organization, customer, seed_pricing, monkeypatch
):
    services.contract_create(
        organization=organization,
        customer=customer,
        rate_card=seed_pricing["rate_card"],
        starting_at=(timezone.now() + timedelta(days=3)).replace(minute=0, second=0, microsecond=0),  # not started yet
    )
    unbilled = CustomerFactory(organization=organization, external_id="no-contract")
    scheduled = []
    monkeypatch.setattr(receivers, "schedule_draft_recompute", scheduled.append)

    usage_recorded.send(sender=UsageEvent, organization_id=organization.pk, customer_ids=[unbilled.pk, customer.pk])

    assert scheduled == [customer.pk]
    # What was left out would have done nothing: a customer without a contract has no drafts.
    assert invoicing.customer_drafts_recompute(customer_id=unbilled.pk) == []


def test_usage_recorded_without_customers_queries_nothing(db, django_assert_num_queries):
    with django_assert_num_queries(0):
        receivers.queue_draft_recompute(customer_ids=[])
