from django.db import migrations

from accounts.periodic import ensure_periodic_task, remove_periodic_task

TASK_NAME = "costcalc: refresh model prices"


def install(apps, schema_editor):
    ensure_periodic_task(
        apps,
        name=TASK_NAME,
        task="costcalc.tasks.refresh_model_prices",
        crontab={"minute": "17", "hour": "4"},
        queue="sync",
    )


def uninstall(apps, schema_editor):
    remove_periodic_task(apps, name=TASK_NAME)


class Migration(migrations.Migration):
    dependencies = [
        ("costcalc", "0002_widen_prices_and_track_override_edits"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
