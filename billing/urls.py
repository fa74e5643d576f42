from django.urls import include, path

urlpatterns: list = [
    path("", include("billing.credit_urls")),  # prepaid credits, top-ups, spending limits
]
