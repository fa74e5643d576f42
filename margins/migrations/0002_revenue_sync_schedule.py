"""Install the hourly revenue sync in django-celery-beat (operators can change it in admin)."""

from django.db import migrations

from accounts.periodic import ensure_periodic_task, remove_periodic_task

TASK_NAME = "margins: revenue sync (all connected organizations)"


def install(apps, schema_editor):
    ensure_periodic_task(
        apps, name=TASK_NAME, task="margins.tasks.revenue_sync_all", crontab={"minute": "15"}, queue="sync"
    )


def uninstall(apps, schema_editor):
    remove_periodic_task(apps, name=TASK_NAME)


class Migration(migrations.Migration):
    dependencies = [
        ("margins", "0001_stripe_revenue_mappings_and_webhooks"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
