"""The error envelope in the OpenAPI schema, for drf-spectacular only.

Every error any app answers is `{"error": {"code", "message", "details"}}` (`accounts.api.errors`);
`ERROR` is that shape, and `error_responses` documents it for the statuses an operation can give,
so each app lists its errors with one shared component instead of describing the envelope again.
"""

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ERROR = inline_serializer(
    "Error",
    {
        "error": inline_serializer(
            "ErrorBody",
            {
                "code": serializers.CharField(
                    help_text="validation_error, authentication_required, forbidden, not_found, conflict, "
                    "payload_too_large, … (the status's description names the codes it can carry)"
                ),
                "message": serializers.CharField(help_text="For humans; names the field at fault when there is one"),
                "details": serializers.DictField(
                    help_text="Machine-readable context: field (the field at fault), required_role, limit_bytes, …"
                ),
            },
        )
    },
)

# What each status means wherever it is given; an operation can say more (``s404="…"``).
ERROR_DESCRIPTIONS = {
    400: "validation_error: details.field names the field at fault (body for malformed JSON)",
    401: "authentication_required: no credentials, or an invalid or revoked API key",
    403: "forbidden: the caller's role is too low (details.required_role) or the API key lacks a scope "
    "(details.required_scope)",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    411: "length_required: a chunked body without Content-Length",
    413: "payload_too_large: the body is over API_MAX_BODY_BYTES, 5 MB by default (details.limit_bytes)",
    415: "unsupported_media_type: the body is not JSON",
    429: "rate_limited: the key's or the address's rate limit; Retry-After and details.retry_after_seconds "
    "say when to try again",
}


def error_responses(*statuses: int, **described: str) -> dict[int, OpenApiResponse]:
    """``{status: OpenApiResponse(ERROR, description)}`` for each of ``statuses``, in order.

    Descriptions come from ``ERROR_DESCRIPTIONS`` unless given as ``s<status>="…"``; a status with
    neither is a KeyError, so no error is listed without saying when it happens.
    """
    text = {**ERROR_DESCRIPTIONS, **{int(key.removeprefix("s")): value for key, value in described.items()}}
    return {status: OpenApiResponse(ERROR, description=text[status]) for status in sorted(set(statuses))}


def document_common_errors(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: every API operation lists the errors any operation of its
    kind can answer, unless it documents them itself: 400 when it takes a body or query parameters,
    404 when its path names an object, 401 and 403 when it needs credentials, 413 and 415 when it
    takes a body, 429 everywhere (rate limits). Each is the shared `Error` envelope."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    if "Error" not in components:
        return result
    error_ref = {"$ref": "#/components/schemas/Error"}
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/") or path.startswith(("/api/schema", "/api/docs")):
            continue
        for method, operation in operations.items():
            if method not in ("get", "put", "post", "patch", "delete"):
                continue
            parameters = operation.get("parameters", [])
            statuses = {429}
            if "requestBody" in operation or any(p.get("in") == "query" for p in parameters):
                statuses.add(400)
            if "requestBody" in operation:
                statuses |= {413, 415}
            if any(p.get("in") == "path" for p in parameters) or "{" in path:
                statuses.add(404)
            if operation.get("security") != [{}] and operation.get("security", [None]) != []:
                statuses |= {401, 403}
            responses = operation.setdefault("responses", {})
            for status in sorted(statuses):
                if str(status) not in responses:
                    responses[str(status)] = {
                        "content": {"application/json": {"schema": error_ref}},
                        "description": ERROR_DESCRIPTIONS[status],
                    }
    return result
