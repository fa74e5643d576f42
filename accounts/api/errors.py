"""One place that turns every API error into `{"error": {"code", "message", "details"}}`.

Codes: validation_error 400, authentication_required 401, forbidden 403, not_found 404,
method_not_allowed 405, conflict 409, length_required 411 (accounts.api.middleware),
payload_too_large 413, unsupported_media_type 415, rate_limited 429, internal_error 500. Apps raise
the DRF exceptions or the ones defined here.
"""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApiError(exceptions.APIException):
    """An error with an explicit code and optional details (the field at fault, suggestions, ...)."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "validation_error"
    default_detail = "The request is not valid."

    def __init__(self, message: str | None = None, *, code: str | None = None, details: dict | None = None):
        super().__init__(detail=message or self.default_detail, code=code or self.default_code)
        self.error_code = code or self.default_code
        self.details = details or {}


class Conflict(ApiError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "The request conflicts with the current state of the resource."


class PayloadTooLarge(ApiError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "The request body is too large."


class Forbidden(ApiError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "forbidden"
    default_detail = "You do not have permission to perform this action."


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


_CODES: list[tuple[type[Exception], int, str]] = [
    (exceptions.NotAuthenticated, 401, "authentication_required"),
    (exceptions.AuthenticationFailed, 401, "authentication_required"),
    (exceptions.PermissionDenied, 403, "forbidden"),
    (exceptions.NotFound, 404, "not_found"),
    (exceptions.MethodNotAllowed, 405, "method_not_allowed"),
    (exceptions.NotAcceptable, 406, "not_acceptable"),
    (exceptions.UnsupportedMediaType, 415, "unsupported_media_type"),
    (exceptions.Throttled, 429, "rate_limited"),
    (exceptions.ParseError, 400, "validation_error"),
    (exceptions.ValidationError, 400, "validation_error"),
]


def _flatten(detail) -> object:
    """DRF ErrorDetail trees → plain strings, lists and dicts."""
    if isinstance(detail, dict):
        return {str(key): _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def _first_message(details) -> tuple[str | None, str]:
    """The first field at fault and its first message, for a readable top-level message."""
    if isinstance(details, dict):
        for key, value in details.items():
            field, message = _first_message(value)
            if key == "non_field_errors":
                return field, message
            return (f"{key}.{field}" if field else key), message
    if isinstance(details, list) and details:
        return _first_message(details[0])
    return None, str(details)


def exception_handler(exc, context) -> Response:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    if isinstance(exc, ApiError):
        status_code, code = exc.status_code, exc.error_code
        message, details = str(exc.detail), exc.details
    elif isinstance(exc, exceptions.APIException):
        status_code, code = next(
            ((s, c) for klass, s, c in _CODES if isinstance(exc, klass)), (exc.status_code, "error")
        )
        if isinstance(exc, exceptions.ValidationError):
            details = _flatten(exc.detail)
            if not isinstance(details, dict):
                details = {"non_field_errors": details}
            field, first = _first_message(details)
            message = f"{field}: {first}" if field and field != "non_field_errors" else first
            details = {"fields": details, **({"field": field} if field else {})}
        elif isinstance(exc, exceptions.ParseError):
            message, details = str(exc.detail), {"field": "body"}
        else:
            message, details = str(exc.detail), {}
    else:
        logger.exception("unhandled error in API view", exc_info=exc)
        status_code, code, message, details = 500, "internal_error", "An internal error occurred.", {}

    headers = {}
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(int(exc.wait) + 1)
        details = {**details, "retry_after_seconds": int(exc.wait) + 1}
    if status_code == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="tokenledger"'
    return Response(error_body(code, message, details), status=status_code, headers=headers)


def page_not_found(request, exception=None):
    """404 outside DRF views: JSON envelope for /api/ paths, the usual page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", f"No endpoint at {request.path}."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("internal_error", "An internal error occurred."), status=500)
    return defaults.server_error(request)
