from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import BlocklistView, BudgetViewSet, CustomerViewSet, EventsView, MetronomeIngestView, TansoUsageEventView

router = SimpleRouter(trailing_slash=False)
router.register("api/v1/customers", CustomerViewSet, basename="customer")
router.register("api/v1/budgets", BudgetViewSet, basename="budget")

urlpatterns = [
    path("api/v1/events", EventsView.as_view(), name="events"),
    path("api/v1/ingest", MetronomeIngestView.as_view(), name="metronome-ingest"),
    path("api/v1/usage-events", TansoUsageEventView.as_view(), name="tanso-usage-events"),
    path("api/v1/budgets/blocklist", BlocklistView.as_view(), name="budgets-blocklist"),
    *router.urls,
]
