from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import ApiKeyViewSet, OrganizationView, organization_switch

router = SimpleRouter(trailing_slash=False)
router.register("api/v1/api-keys", ApiKeyViewSet, basename="api-key")

urlpatterns = [
    path("api/v1/organization", OrganizationView.as_view(), name="organization"),
    path("dashboard/organization", organization_switch, name="dashboard-organization"),
    *router.urls,
]
