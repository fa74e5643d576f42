from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from .api.openapi import error_responses
from .api.pagination import EnvelopeCursorPagination
from .api.views import OrganizationScopedAPIView, OrganizationScopedViewSet
from .models import ApiKey, ApiKeyScope, Role
from .serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeyScopesSerializer,
    ApiKeySerializer,
    CallerOrganizationSerializer,
    OrganizationSerializer,
)
from .services import api_key_create, api_key_revoke, api_key_set_scopes
from .tenancy import organization_choose


class OrganizationView(OrganizationScopedAPIView):
    """The caller's organization."""

    serializer_class = OrganizationSerializer
    required_scopes = {"GET": tuple(ApiKeyScope.values), "HEAD": tuple(ApiKeyScope.values)}  # any key: who am I

    @extend_schema(responses=CallerOrganizationSerializer)
    def get(self, request):
        data = self.get_serializer(self.organization).data
        api_key = self.tenant.api_key
        return Response(
            {
                **data,
                "role": self.tenant.role,
                "via": "api_key" if api_key else "session",
                "scopes": list(api_key.scopes) if api_key else None,
            }
        )


class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """API keys of the caller's organization. Admins create and revoke them; the secret is shown once."""

    queryset = ApiKey.objects.all()
    serializer_class = ApiKeySerializer
    pagination_class = EnvelopeCursorPagination
    required_role = Role.ADMIN
    required_write_role = Role.ADMIN
    required_scope = ApiKeyScope.ADMIN

    @extend_schema(
        request=ApiKeyCreateSerializer,
        responses={201: ApiKeyCreatedSerializer, **error_responses(400, 401, 403)},
    )
    def create(self, request):
        payload = ApiKeyCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        created_by = request.user if getattr(request.user, "pk", None) else None
        api_key, raw_key = api_key_create(
            organization=self.organization,
            name=payload.validated_data["name"],
            created_by=created_by,
            scopes=payload.validated_data["scopes"],
        )
        body = {**ApiKeySerializer(api_key).data, "key": raw_key}
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=ApiKeyScopesSerializer,
        responses={200: ApiKeySerializer, **error_responses(400, 401, 403, 404)},
        description="Replace the key's scopes; applies to its next request in every process.",
    )
    def partial_update(self, request, pk=None):
        api_key = self.get_object()
        payload = ApiKeyScopesSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        api_key = api_key_set_scopes(api_key=api_key, scopes=payload.validated_data["scopes"])
        return Response(ApiKeySerializer(api_key).data)

    @extend_schema(request=None, responses=ApiKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        api_key = api_key_revoke(api_key=self.get_object())
        return Response(ApiKeySerializer(api_key).data)


@login_required
@require_POST
def organization_switch(request):
    """The dashboard's organization switcher (a form POST with `organization` and `next`): the
    session acts for that organization from now on, pages and the JSON endpoints they call alike."""
    target = request.POST.get("next") or ""
    hosts = {request.get_host()}
    if not url_has_allowed_host_and_scheme(target, allowed_hosts=hosts, require_https=request.is_secure()):
        target = reverse("dashboard-margins")
    if organization_choose(request, request.POST.get("organization") or "") is None:
        messages.error(request, "You are not a member of that organization.")
    return HttpResponseRedirect(target)
