from django.apps import AppConfig


class CostcalcConfig(AppConfig):
    """The model price catalog and the cost engine (what a call cost us)."""

    name = "costcalc"
    verbose_name = "Cost catalog"
