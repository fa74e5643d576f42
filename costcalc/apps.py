from django.apps import AppConfig


class CostcalcConfig(AppConfig):
    """The model price catalog and the cost engine (what a call cost us)."""

    name = "costcalc"
    verbose_name = "Cost catalog"

    def ready(self) -> None:
        from . import tasks  # noqa: F401  (registers the catalog's tasks in every process)
