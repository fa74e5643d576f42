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
    403: "forbidden: the caller's role is too low (details.required_role)",
    404: "not_found",
    409: "conflict",
    413: "payload_too_large: the body is over API_MAX_BODY_BYTES, 5 MB by default (details.limit_bytes)",
}


def error_responses(*statuses: int, **described: str) -> dict[int, OpenApiResponse]:
    """``{status: OpenApiResponse(ERROR, description)}`` for each of ``statuses``, in order.

    Descriptions come from ``ERROR_DESCRIPTIONS`` unless given as ``s<status>="…"``; a status with
    neither is a KeyError, so no error is listed without saying when it happens.
    """
    text = {**ERROR_DESCRIPTIONS, **{int(key.removeprefix("s")): value for key, value in described.items()}}
    return {status: OpenApiResponse(ERROR, description=text[status]) for status in sorted(set(statuses))}
