from django.db import migrations

from accounts.periodic import ensure_periodic_task, remove_periodic_task

EXPIRE = "billing: expire prepaid credits"


def install(apps, schema_editor):
    ensure_periodic_task(
        apps, name=EXPIRE, task="billing.tasks.credit_expire", crontab={"minute": "5"}, queue="billing"
    )


def uninstall(apps, schema_editor):
    remove_periodic_task(apps, name=EXPIRE)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0004_prepaid_credits_topups_spending_limits"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
