"""Tenant-scoped base views. Every query a view makes goes through `get_queryset`, which filters by
the caller's organization; subclasses cannot replace it (they override `get_base_queryset`), so a
view cannot forget the filter, and another tenant's object is simply not found (404).
"""

from functools import cached_property

from rest_framework import generics, viewsets
from rest_framework.response import Response

from ..tenancy import Tenant, resolve_tenant


class OrganizationScopedMixin:
    organization_field = "organization"
    envelope = True
    # Methods that answer a compatibility dialect's own shape on a view that otherwise uses the envelope.
    unenveloped_methods: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "get_queryset" in cls.__dict__:
            raise TypeError(
                f"{cls.__name__} overrides get_queryset(); override get_base_queryset() instead so the "
                "organization filter cannot be bypassed."
            )

    @cached_property
    def tenant(self) -> Tenant:
        return resolve_tenant(self.request)

    @property
    def organization(self):
        return self.tenant.organization

    def get_base_queryset(self):
        return super().get_queryset()

    def get_queryset(self):
        return self.get_base_queryset().filter(**{self.organization_field: self.organization})

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "organization": self.organization}

    def finalize_response(self, request, response, *args, **kwargs):
        """Wrap successful bodies in `{"data": ...}` (paginated bodies already are)."""
        if (
            self.envelope
            and request.method not in self.unenveloped_methods
            and isinstance(response, Response)
            and 200 <= response.status_code < 300
            and response.data is not None
            and not (isinstance(response.data, dict) and "data" in response.data)
        ):
            response.data = {"data": response.data}
        return super().finalize_response(request, response, *args, **kwargs)


class OrganizationScopedAPIView(OrganizationScopedMixin, generics.GenericAPIView):
    """Base for tenant-scoped API views (single endpoints)."""


class OrganizationScopedViewSet(OrganizationScopedMixin, viewsets.GenericViewSet):
    """Base for tenant-scoped resources; add DRF mixins (ListModelMixin, ...) as needed."""
