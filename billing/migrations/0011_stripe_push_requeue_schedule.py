from django.db import migrations

from accounts.periodic import ensure_periodic_task, remove_periodic_task

REQUEUE = "billing: requeue unfinished Stripe invoice pushes"


def install(apps, schema_editor):
    ensure_periodic_task(
        apps, name=REQUEUE, task="billing.tasks.collection_requeue_pending", crontab={"minute": "*/15"},
        queue="billing",
    )


def uninstall(apps, schema_editor):
    remove_periodic_task(apps, name=REQUEUE)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0010_stripe_collection"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
