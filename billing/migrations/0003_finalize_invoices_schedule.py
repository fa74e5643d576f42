from django.db import migrations

from accounts.periodic import ensure_periodic_task, remove_periodic_task

NAME = "billing: finalize invoices after the grace period"


def install(apps, schema_editor):
    ensure_periodic_task(
        apps, name=NAME, task="billing.tasks.finalize_due_invoices", crontab={"minute": "*/15"}, queue="billing"
    )


def uninstall(apps, schema_editor):
    remove_periodic_task(apps, name=NAME)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0002_rollups_exact_numeric"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
