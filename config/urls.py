from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config.health import healthz


class SwaggerView(SpectacularSwaggerView):
    """The Swagger UI page: GET only (its HTML renderer cannot render OPTIONS metadata or errors)."""

    http_method_names = ["get", "head"]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("accounts.urls")),
    path("", include("costcalc.urls")),
    path("", include("events.urls")),
    path("", include("billing.urls")),
    path("", include("margins.urls")),
]

handler404 = "accounts.api.errors.page_not_found"
handler500 = "accounts.api.errors.server_error"
