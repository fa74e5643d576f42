from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response


class EnvelopeCursorPagination(CursorPagination):
    """Cursor pagination in our envelope: `{"data": [...], "next": url|null, "previous": url|null}`."""

    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500
    ordering = "-created_at"

    def get_page_size(self, request):
        """`limit` must be a positive integer (above max_page_size it is capped); anything else is a 400."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
            raise ValidationError({self.page_size_query_param: ["A positive integer is required."]})
        return min(int(raw), self.max_page_size)

    def decode_cursor(self, request):
        """A cursor that does not decode is bad input (400, details.field = cursor), not a missing page."""
        try:
            return super().decode_cursor(request)
        except NotFound as exc:
            raise ValidationError({self.cursor_query_param: [str(exc.detail)]}) from exc

    def get_paginated_response(self, data):
        return Response({"data": data, "next": self.get_next_link(), "previous": self.get_previous_link()})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["data", "next", "previous"],
            "properties": {
                "data": schema,
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "previous": {"type": "string", "nullable": True, "format": "uri"},
            },
        }
