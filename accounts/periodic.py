"""Helper for data migrations that install a django-celery-beat schedule operators then edit in admin."""


def ensure_periodic_task(
    apps,
    *,
    name: str,
    task: str,
    crontab: dict | None = None,
    every_seconds: int | None = None,
    queue: str | None = None,
) -> None:
    """Create the periodic task ``name`` unless it exists (an operator's edits are never overwritten)."""
    if (crontab is None) == (every_seconds is None):
        raise ValueError("give exactly one of crontab or every_seconds")
    periodic_task = apps.get_model("django_celery_beat", "PeriodicTask")
    if periodic_task.objects.filter(name=name).exists():
        return
    schedule = {}
    if crontab is not None:
        crontab_model = apps.get_model("django_celery_beat", "CrontabSchedule")
        fields = {"minute": "0", "hour": "*", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"}
        fields.update({key: str(value) for key, value in crontab.items()})
        schedule["crontab"], _ = crontab_model.objects.get_or_create(timezone="UTC", **fields)
    else:
        interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
        schedule["interval"], _ = interval_model.objects.get_or_create(every=every_seconds, period="seconds")
    periodic_task.objects.create(name=name, task=task, queue=queue, **schedule)


def remove_periodic_task(apps, *, name: str) -> None:
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=name).delete()
