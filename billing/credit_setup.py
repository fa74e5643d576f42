"""Wiring of prepaid credits into the rest of the project, called from BillingConfig.ready()."""

from events.hooks import BlockedSet


def spending_limit_block_source(*, organization) -> BlockedSet:
    """events' blocklist asks every source: customers at or over their spending limit are blocked."""
    from billing.credit_selectors import customers_over_spending_limit

    over = customers_over_spending_limit(organization=organization)
    return BlockedSet(customer_ids=frozenset(limit.customer.external_id for limit, _ in over))


def _usage_recorded(sender, *, organization_id, customer_ids, **kwargs) -> None:
    """New usage may push a customer over its spending limit: have events recompute the blocklist."""
    from accounts.models import Organization
    from billing.credit_models import SpendingLimit
    from billing.credit_services import blocklist_recompute

    if SpendingLimit.objects.filter(
        organization_id=organization_id, customer_id__in=list(customer_ids), enabled=True
    ).exists():
        blocklist_recompute(organization=Organization.objects.get(pk=organization_id))


def connect() -> None:
    from billing import credit_admin, credit_tasks  # noqa: F401  (admin pages and Celery tasks in every process)
    from events.hooks import register_block_source
    from events.signals import usage_recorded

    register_block_source(spending_limit_block_source)
    usage_recorded.connect(_usage_recorded, dispatch_uid="billing.credits.usage_recorded")
