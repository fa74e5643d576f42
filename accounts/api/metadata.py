"""`OPTIONS` on any API view: the endpoint's metadata, never a 500.

DRF's `SimpleMetadata` describes the write actions by calling `view.get_serializer()`, which fails
on views that parse their body without a serializer class (the ingest dialects, the billing
dialect, the margins endpoints). Those answer the metadata without `actions`.
"""

from rest_framework.metadata import SimpleMetadata


def _has_serializer(view) -> bool:
    if getattr(view, "serializer_class", None) is not None:
        return True
    from rest_framework.generics import GenericAPIView  # not at import: rest_framework.views imports this module

    get_class = getattr(type(view), "get_serializer_class", None)
    return get_class is not None and get_class is not GenericAPIView.get_serializer_class


class EndpointMetadata(SimpleMetadata):
    def determine_metadata(self, request, view):
        metadata = super().determine_metadata(request, view)
        metadata["allowed_methods"] = [method for method in view.allowed_methods if method != "OPTIONS"]
        return metadata

    def determine_actions(self, request, view):
        if not _has_serializer(view):
            return {}
        return super().determine_actions(request, view)
