"""JSON parsing with orjson and a hard body-size limit (413 before anything is parsed)."""

import orjson
from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from .errors import PayloadTooLarge


def read_limited_body(stream, meta: dict) -> bytes:
    """Read a request body, refusing anything over API_MAX_BODY_BYTES by header or by count."""
    limit = settings.API_MAX_BODY_BYTES
    try:
        declared = int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise PayloadTooLarge(
            f"Request body is {declared} bytes; the limit is {limit} bytes.",
            details={"limit_bytes": limit},
        )
    body = stream.read(limit + 1) if stream is not None else b""
    if len(body) > limit:
        raise PayloadTooLarge(f"Request body exceeds {limit} bytes.", details={"limit_bytes": limit})
    return body


def loads_json(body: bytes):
    if not body.strip():
        raise ParseError("Request body is empty; a JSON document is required.")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"Malformed JSON: {exc}") from exc


class JSONParser(parsers.BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        meta = request.META if request is not None else {}
        return loads_json(read_limited_body(stream, meta))
