from django.core.management.base import BaseCommand, CommandError

from billing.metering import metric_rollups_rebuild
from billing.models import BillableMetric


class Command(BaseCommand):
    help = (
        "Rebuild billable metrics' hourly usage rollups from the ledger, now, in this process (creating or "
        "changing a metric queues one already). Ingest goes on while it runs; drafts are recomputed after."
    )

    def add_arguments(self, parser):
        parser.add_argument("metric_ids", nargs="*", help="billable metric ids (uuid)")
        parser.add_argument("--organization", help="rebuild every metric of this organization (id)")

    def handle(self, *args, metric_ids, organization, **options):
        if not metric_ids and not organization:
            raise CommandError("give metric ids or --organization")
        metrics = BillableMetric.objects.all()
        metrics = metrics.filter(organization_id=organization) if organization else metrics.filter(pk__in=metric_ids)
        found = list(metrics)
        missing = set(metric_ids) - {str(metric.pk) for metric in found}
        if missing:
            raise CommandError(f"no billable metric {sorted(missing)[0]}")
        for metric in found:
            matched = metric_rollups_rebuild(metric=metric)
            self.stdout.write(f"{metric.name}: rebuilt from {matched} matching events")
