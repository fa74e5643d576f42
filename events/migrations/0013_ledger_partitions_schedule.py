from django.db import migrations

from accounts.periodic import ensure_periodic_task, remove_periodic_task

TASK_NAME = "events: create the ledger's monthly partitions ahead"


def install(apps, schema_editor):
    # Daily: a month's partition exists months before its first event (LEDGER_PARTITION_MONTHS_AHEAD),
    # so a missed run or two changes nothing; events of a month without one land in the DEFAULT
    # partition and are moved out when it is created.
    ensure_periodic_task(
        apps,
        name=TASK_NAME,
        task="events.tasks.ensure_ledger_partitions",
        crontab={"minute": "17", "hour": "3"},
        queue="ingest",
    )


def uninstall(apps, schema_editor):
    remove_periodic_task(apps, name=TASK_NAME)


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0012_partitioned_ledger"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
