from django.urls import path

from .views import ModelListView

urlpatterns = [
    path("api/v1/models", ModelListView.as_view(), name="model-list"),
]
