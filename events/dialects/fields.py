"""Hand-written field checks shared by the dialects: plain functions over parsed JSON values.

They are much cheaper than a serializer per event, and raise `FieldError` with the field at
fault; a dialect turns that into a per-event error (MarginDash) or a 400 (Metronome, Tanso).
"""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import orjson

MAX_TOKENS = 100_000_000


class FieldError(ValueError):
    def __init__(self, field: str, message: str, code: str = "validation_error"):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.code = code


def required_string(data: dict, key: str, field: str, *, max_length: int = 255) -> str:
    value = data.get(key)
    if value is None:
        raise FieldError(field, "is required")
    return _string(value, field, max_length)


def optional_string(data: dict, key: str, field: str, *, max_length: int = 255, default: str = "") -> str:
    value = data.get(key)
    if value is None:
        return default
    return _string(value, field, max_length)


def _string(value, field: str, max_length: int) -> str:
    if type(value) is not str:
        raise FieldError(field, f"must be a string, got {_json_type(value)}")
    if not value:
        raise FieldError(field, "must not be empty")
    if len(value) > max_length:
        raise FieldError(field, f"must be at most {max_length} characters, got {len(value)}")
    if "\x00" in value:
        raise FieldError(field, "must not contain NUL characters")
    return value


def optional_uuid(data: dict, key: str, field: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    text = _string(value, field, 64)
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise FieldError(field, "must be a UUID") from None


def optional_object(data: dict, key: str, field: str) -> dict:
    value = data.get(key)
    if value is None:
        return {}
    if type(value) is not dict:
        raise FieldError(field, f"must be an object, got {_json_type(value)}")
    return value


def json_text(value: dict, field: str) -> str:
    """A JSON object as text for a JSONB column; PostgreSQL refuses the NUL character in JSONB."""
    text = orjson.dumps(value).decode()
    if "\\u0000" in text:
        raise FieldError(field, "must not contain NUL characters")
    return text


def token_count(data: dict, key: str, field: str, *, required: bool) -> int:
    value = data.get(key)
    if value is None:
        if required:
            raise FieldError(field, "is required")
        return 0
    return integer_in_range(value, field, 0, MAX_TOKENS)


def integer_in_range(value, field: str, low: int, high: int) -> int:
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int:
        raise FieldError(field, f"must be an integer, got {_json_type(value)}")
    if not low <= value <= high:
        raise FieldError(field, f"must be between {low:,} and {high:,}, got {value:,}")
    return value


def decimal_number(value, field: str, *, low: Decimal | None = None, high: Decimal | None = None) -> Decimal:
    """A JSON number as an exact Decimal.

    Bodies parsed by orjson give floats for non-integers; their shortest repr is the literal the
    client wrote for any number of up to 15 significant digits, so `Decimal(repr(f))` recovers it
    exactly without ever doing arithmetic on the float. (The Tanso endpoint parses numbers straight
    to Decimal.)
    """
    if type(value) is int:
        number = Decimal(value)
    elif type(value) is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise FieldError(field, "must be a finite number")
        number = Decimal(repr(value))
    elif type(value) is Decimal:
        number = value
    else:
        raise FieldError(field, f"must be a number, got {_json_type(value)}")
    if not number.is_finite():
        raise FieldError(field, "must be a finite number")
    if low is not None and number < low:
        raise FieldError(field, f"must be at least {low:,}, got {number}")
    if high is not None and number > high:
        raise FieldError(field, f"must be at most {high:,}, got {number}")
    return number


def parse_timestamp(value, field: str, *, naive_is_utc: bool) -> datetime:
    """ISO 8601 / RFC 3339 text → aware UTC datetime. Naive values are UTC only when allowed."""
    if type(value) is not str:
        raise FieldError(field, f"must be an ISO 8601 timestamp string, got {_json_type(value)}")
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise FieldError(field, f"is not an ISO 8601 timestamp: {value!r}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        if not naive_is_utc:
            raise FieldError(field, "must include a time zone offset (RFC 3339), e.g. 2025-06-15T14:30:00Z")
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise FieldError(field, f"is out of range: {value!r}") from None


def check_window(moment: datetime, field: str, *, now: datetime, max_age, max_ahead) -> datetime:
    if moment < now - max_age:
        raise FieldError(field, f"must be within the last {max_age.days} days")
    if moment > now + max_ahead:
        hours = int(max_ahead.total_seconds() // 3600)
        raise FieldError(field, f"must be no more than {hours} hour{'s' if hours != 1 else ''} in the future")
    return moment


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
