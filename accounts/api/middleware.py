"""Request and response rules for everything under `/api/`, DRF view or not.

- A body sent with `Transfer-Encoding: chunked` and no `Content-Length` is refused with 411
  `length_required`: WSGI gives Django no reliable way to read it (it would be read as empty).
- Any error answer under `/api/` that is not JSON already (Django's 404 page, the DEBUG technical
  404 page, a 405 from a function view's method decorator, ...) becomes the error envelope, in every
  mode, keeping its status and headers such as `Allow`.
"""

from django.http import JsonResponse

from .errors import error_body

API_PREFIX = "/api/"

_CODES = {
    400: ("validation_error", "The request is not valid."),
    401: ("authentication_required", "Authentication credentials were not provided."),
    403: ("forbidden", "You do not have permission to perform this action."),
    404: ("not_found", "No endpoint at {path}."),
    405: ("method_not_allowed", "Method {method} is not allowed on {path}."),
    411: ("length_required", "A request body needs a Content-Length header; chunked bodies are not accepted."),
    413: ("payload_too_large", "The request body is too large."),
    415: ("unsupported_media_type", "Unsupported media type."),
    429: ("rate_limited", "Too many requests."),
}
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


def _is_chunked_without_length(request) -> bool:
    encoding = request.META.get("HTTP_TRANSFER_ENCODING", "")
    return "chunked" in encoding.lower() and not request.META.get("CONTENT_LENGTH")


class ApiEnvelopeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        if _is_chunked_without_length(request):
            return envelope_response(request, 411)
        response = self.get_response(request)
        if response.status_code >= 400 and not response.get("Content-Type", "").startswith("application/json"):
            replaced = envelope_response(request, response.status_code)
            for header in _KEPT_HEADERS:
                if header in response:
                    replaced[header] = response[header]
            return replaced
        return response


def envelope_response(request, status: int) -> JsonResponse:
    code, message = _CODES.get(status, ("internal_error" if status >= 500 else "error", "The request failed."))
    if status >= 500:
        message = "An internal error occurred."
    return JsonResponse(error_body(code, message.format(path=request.path, method=request.method)), status=status)
