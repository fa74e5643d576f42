from datetime import date

from django.core.management.base import BaseCommand, CommandError

from events.services.partitions import (
    LedgerMonthRefused,
    ledger_month_attach,
    ledger_month_detach,
    ledger_month_ensure,
    ledger_partitions,
    ledger_partitions_ensure,
)


def _month(value: str) -> date:
    try:
        year, month = value.split("-")
        return date(int(year), int(month), 1)
    except ValueError as error:
        raise CommandError(f"not a month (YYYY-MM): {value}") from error


class Command(BaseCommand):
    help = (
        "The usage ledger's monthly partitions: --list them, --ensure this month's and the next ones "
        "(what the daily beat task does; --ensure YYYY-MM for one month), or --detach YYYY-MM an old "
        "month (the table is kept; refused for the current and previous month, months with draft "
        "invoices and while a metric rollup rebuild runs), or --attach YYYY-MM a detached month again."
    )

    def add_arguments(self, parser):
        actions = parser.add_mutually_exclusive_group(required=True)
        actions.add_argument("--list", action="store_true", help="attached partitions, detached months, DEFAULT")
        actions.add_argument("--ensure", nargs="?", const="", metavar="YYYY-MM", help="create partitions ahead")
        actions.add_argument("--detach", metavar="YYYY-MM", help="detach one month's partition")
        actions.add_argument("--attach", metavar="YYYY-MM", help="attach a detached month's table again")

    def handle(self, *args, **options):
        try:
            self._handle(**options)
        except LedgerMonthRefused as refused:
            raise CommandError(str(refused)) from refused

    def _handle(self, *, ensure, detach, attach, **options):
        if attach:
            moved = ledger_month_attach(month=_month(attach))
            self.stdout.write(
                f"attached {_month(attach):%Y-%m} again" + (f", moved {moved} events from DEFAULT" if moved else "")
            )
        elif detach:
            row = ledger_month_detach(month=_month(detach))
            self.stdout.write(
                f"detached {row.month:%Y-%m}: {row.event_count} events in table {row.table_name} "
                "(archive it, e.g. pg_dump -t, then DROP TABLE it)"
            )
        elif ensure is not None:
            created = (
                ledger_partitions_ensure() if ensure == "" else _one(ledger_month_ensure(month=_month(ensure)), ensure)
            )
            if not created:
                self.stdout.write("every partition already exists")
            for month, moved in created.items():
                self.stdout.write(f"created {month:%Y-%m}" + (f", moved {moved} events from DEFAULT" if moved else ""))
        else:
            for partition in ledger_partitions():
                label = "DEFAULT" if partition.month is None else f"{partition.month:%Y-%m}"
                state = "attached" if partition.attached else "detached"
                self.stdout.write(f"{label:8} {state:9} {partition.rows:>12} events  {partition.name}")


def _one(moved: int | None, value: str) -> dict:
    return {} if moved is None else {_month(value): moved}
