"""python manage.py sync_model_prices --source genai-prices|openrouter|openrouter-history [--file PATH | --url URL]"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from costcalc.loaders import PriceSourceError, load_source
from costcalc.services import sync_model_prices
from costcalc.sources import SOURCE_GENAI_PRICES, SOURCES


class Command(BaseCommand):
    help = "Load model prices from a source into the date-effective catalog (idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--source", choices=SOURCES, default=SOURCE_GENAI_PRICES)
        where = parser.add_mutually_exclusive_group()
        where.add_argument("--file", help="path of the source document (JSON)")
        where.add_argument("--url", help="http(s) URL of the source document (JSON)")
        parser.add_argument("--show-skipped", action="store_true", help="list every skipped slug with its reason")

    def handle(self, *args, source: str, file: str | None, url: str | None, show_skipped: bool, **options) -> None:
        started = time.monotonic()
        try:
            result = load_source(source, file=file, url=url)
        except PriceSourceError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{source}: {len(result.records)} price periods for {len(result.slugs)} slugs parsed")
        summary = sync_model_prices(result=result, progress=self._progress_bar())
        if show_skipped:
            for slug, reason in summary.skipped_reasons:
                self.stdout.write(f"  skipped {slug}: {reason}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{summary.added} added, {summary.changed} changed, {summary.unchanged} unchanged, "
                f"{summary.skipped} skipped in {time.monotonic() - started:.1f}s"
            )
        )

    def _progress_bar(self):
        width = 30
        interactive = self.stdout.isatty()  # redraw in place on a terminal; quarter steps in logs
        state = {"shown": -1}

        def show(done: int, total: int) -> None:
            percent = 100 * done // total if total else 100
            if percent == state["shown"] and done != total:
                return
            state["shown"] = percent
            filled = width * percent // 100
            bar = "#" * filled + "." * (width - filled)
            ending = "" if interactive and done != total else "\n"
            if interactive or done == total or percent % 25 == 0:
                self.stdout.write(f"\r[{bar}] {percent:3d}% {done}/{total} slugs", ending=ending)
                self.stdout.flush()

        return show
