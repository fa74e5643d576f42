from django.urls import path

from .views import MarginDashModelListView, ModelPriceListView

urlpatterns = [
    # MarginDash's public shape (its SDK's cost calculator), with or without a key.
    path("api/v1/models", MarginDashModelListView.as_view(), name="model-list"),
    # Ours: every price field, tiers and dates.
    path("api/v1/model-prices", ModelPriceListView.as_view(), name="model-price-list"),
]
