"""Test-only URLs: a Pro-gated and a throttled endpoint to exercise the shared permission and error layers."""

from django.urls import include, path
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle

from accounts.api.permissions import IsOrganizationMember, RequiresPlan
from accounts.api.views import OrganizationScopedAPIView


class ProOnlyView(OrganizationScopedAPIView):
    permission_classes = [IsOrganizationMember, RequiresPlan]

    def get(self, request):
        return Response({"organization": self.organization.name})


class AlwaysThrottled(BaseThrottle):
    def allow_request(self, request, view):
        return False

    def wait(self):
        return 7


class ThrottledView(OrganizationScopedAPIView):
    throttle_classes = [AlwaysThrottled]

    def get(self, request):
        return Response({})


urlpatterns = [
    path("api/test/pro-only", ProOnlyView.as_view()),
    path("api/test/throttled", ThrottledView.as_view()),
    path("", include("config.urls")),
]
