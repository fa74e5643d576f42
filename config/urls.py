from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from accounts.signin import SignInView
from config.health import healthz


class SwaggerView(SpectacularSwaggerView):
    """The Swagger UI page: GET only (its HTML renderer cannot render OPTIONS metadata or errors)."""

    http_method_names = ["get", "head"]


class RedocView(SpectacularRedocView):
    """The Redoc page: GET only, as the Swagger UI page."""

    http_method_names = ["get", "head"]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("login/", SignInView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", RedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("", include("accounts.urls")),
    path("", include("costcalc.urls")),
    path("", include("events.urls")),
    path("", include("billing.urls")),
    path("", include("margins.urls")),
]

handler404 = "accounts.api.errors.page_not_found"
handler500 = "accounts.api.errors.server_error"
