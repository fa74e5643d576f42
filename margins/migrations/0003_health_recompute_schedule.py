"""Install the scheduled health-tier check (threshold webhooks between syncs) in django-celery-beat."""

from django.db import migrations

from accounts.periodic import ensure_periodic_task, remove_periodic_task

TASK_NAME = "margins: health tiers and threshold webhooks (organizations with endpoints)"


def install(apps, schema_editor):
    ensure_periodic_task(
        apps, name=TASK_NAME, task="margins.tasks.health_recompute_all", crontab={"minute": "*/10"}, queue="sync"
    )


def uninstall(apps, schema_editor):
    remove_periodic_task(apps, name=TASK_NAME)


class Migration(migrations.Migration):
    dependencies = [("margins", "0002_revenue_sync_schedule")]

    operations = [migrations.RunPython(install, uninstall)]
