from django.db import migrations

from accounts.periodic import ensure_periodic_task, remove_periodic_task

TASK_NAME = "events: refresh budget blocklists"


def install(apps, schema_editor):
    # Every minute: day and month budgets lift their blocks soon after the period rolls over.
    ensure_periodic_task(
        apps, name=TASK_NAME, task="events.tasks.refresh_blocklists", every_seconds=60, queue="ingest"
    )


def uninstall(apps, schema_editor):
    remove_periodic_task(apps, name=TASK_NAME)


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0002_ingest_settings_features_budgets_blocklist"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
