from django.db import models


class NumericField(models.DecimalField):
    """PostgreSQL ``numeric`` without precision or scale: exact sums that cannot overflow a column.

    Used for usage rollups, which the ingest path writes: a large or finely divided property value
    must never make ingest fail.
    """

    def __init__(self, *args, **kwargs):
        kwargs.pop("max_digits", None)
        kwargs.pop("decimal_places", None)
        super().__init__(*args, **kwargs)

    def check(self, **kwargs):
        return models.Field.check(self, **kwargs)

    def db_type(self, connection) -> str:
        return "numeric"
