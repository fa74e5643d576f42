"""OpenAPI generation that documents our envelope.

`OrganizationScopedMixin.finalize_response` wraps every successful body of a view with
`envelope = True` in `{"data": ...}` unless it already is an object with a `data` key (a paginated
page, or a view that built the envelope itself). This schema class applies the same rule to the
documented 2xx responses, so the schema says what the endpoint really answers.
"""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent


class EnvelopeAutoSchema(AutoSchema):
    def _get_response_for_code(self, serializer, status_code, media_types=None, direction="response"):
        response = super()._get_response_for_code(serializer, status_code, media_types, direction)
        enveloped = getattr(self.view, "envelope", False) and self.method not in getattr(
            self.view, "unenveloped_methods", ()
        )
        if not enveloped or not str(status_code).startswith("2"):
            return response
        for media_type, media in (response.get("content") or {}).items():
            if media_type != "application/json":  # the envelope is JSON; a CSV answer is not wrapped
                continue
            schema = media.get("schema")
            if schema is not None and not self._is_free_form(schema) and not self._has_data_key(schema):
                media["schema"] = {"type": "object", "properties": {"data": schema}, "required": ["data"]}
        return response

    @staticmethod
    def _is_free_form(schema: dict) -> bool:
        """`OpenApiTypes.OBJECT`: any object, the envelope included (the view's own shape is unknown)."""
        return schema.get("type") == "object" and "properties" not in schema and "$ref" not in schema

    def _has_data_key(self, schema: dict) -> bool:
        if "$ref" in schema:
            try:
                schema = self.registry[(schema["$ref"].rsplit("/", 1)[-1], ResolvedComponent.SCHEMA)].schema
            except KeyError:
                return False
        return schema.get("type") == "object" and "data" in (schema.get("properties") or {})
