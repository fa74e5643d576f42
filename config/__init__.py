"""The Django project package: settings, URL map, Celery app and project-wide commands."""

from .celery import app as celery_app

__all__ = ["celery_app"]
