from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.embedded_db.server import ensure_server, stop_server


class Command(BaseCommand):
    help = "Start, stop or show the embedded PostgreSQL server used when DATABASE_URL is unset."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["start", "stop", "status"])

    def handle(self, *args, action: str, **options):
        if settings.DATABASES["default"]["ENGINE"] != "config.embedded_db":
            raise CommandError("DATABASE_URL is set: this project is not using the embedded server.")
        pgdata = settings.EMBEDDED_POSTGRES_DIR
        if action == "start":
            self.stdout.write(f"running, socket in {ensure_server(pgdata)}")
        elif action == "stop":
            self.stdout.write("stopped" if stop_server(pgdata) else "was not running")
        else:
            running = (pgdata / "postmaster.pid").exists()
            self.stdout.write(f"{'running' if running else 'stopped'} ({pgdata})")
