from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from .api.pagination import EnvelopeCursorPagination
from .api.views import OrganizationScopedAPIView, OrganizationScopedViewSet
from .models import ApiKey, Role
from .serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    CallerOrganizationSerializer,
    OrganizationSerializer,
)
from .services import api_key_create, api_key_revoke


class OrganizationView(OrganizationScopedAPIView):
    """The caller's organization."""

    serializer_class = OrganizationSerializer

    @extend_schema(responses=CallerOrganizationSerializer)
    def get(self, request):
        data = self.get_serializer(self.organization).data
        return Response({**data, "role": self.tenant.role, "via": "api_key" if self.tenant.api_key else "session"})


class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """API keys of the caller's organization. Admins create and revoke them; the secret is shown once."""

    queryset = ApiKey.objects.all()
    serializer_class = ApiKeySerializer
    pagination_class = EnvelopeCursorPagination
    required_role = Role.ADMIN
    required_write_role = Role.ADMIN

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer})
    def create(self, request):
        payload = ApiKeyCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        created_by = request.user if getattr(request.user, "pk", None) else None
        api_key, raw_key = api_key_create(
            organization=self.organization, name=payload.validated_data["name"], created_by=created_by
        )
        body = {**ApiKeySerializer(api_key).data, "key": raw_key}
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=ApiKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        api_key = api_key_revoke(api_key=self.get_object())
        return Response(ApiKeySerializer(api_key).data)
