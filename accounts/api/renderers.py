from decimal import Decimal

import orjson
from django.utils.functional import Promise
from rest_framework import renderers


def _default(value):
    if isinstance(value, Decimal | Promise):  # money as an exact string; lazy translations as text
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def plain_decimal(number: Decimal) -> str:
    """A Decimal as plain text without exponent or trailing zeros: 1.500000 → '1.5', 1E+6 → '1000000'."""
    if number == 0:
        return "0"
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def json_number(number: Decimal | int) -> orjson.Fragment:
    """An exact JSON number for a dialect that types money or quantities as numbers, written from the
    decimal text (never through a float)."""
    return orjson.Fragment(plain_decimal(Decimal(number)).encode())


def dumps(data) -> bytes:
    return orjson.dumps(data, default=_default, option=orjson.OPT_NON_STR_KEYS)


class JSONRenderer(renderers.BaseRenderer):
    """orjson rendering: Decimals as strings (money never becomes a float on the way out)."""

    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return b"" if data is None else dumps(data)
