from decimal import Decimal

import orjson
from django.utils.functional import Promise
from rest_framework import renderers


def _default(value):
    if isinstance(value, Decimal | Promise):  # money as an exact string; lazy translations as text
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(data) -> bytes:
    return orjson.dumps(data, default=_default, option=orjson.OPT_NON_STR_KEYS)


class JSONRenderer(renderers.BaseRenderer):
    """orjson rendering: Decimals as strings (money never becomes a float on the way out)."""

    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return b"" if data is None else dumps(data)
