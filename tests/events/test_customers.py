"""Customers: GET/POST /api/v1/customers and resolution from any identifier."""

import uuid

import pytest
from django.utils import timezone

from events.drafts import CustomerRef
from events.models import Customer, UsageEvent
from events.services import customer_create, customers_resolve
from events.services import customers as customers_module
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/customers"


def test_create_metronome_style_customer(api_client, organization):
    response = api_client.post(URL, {"name": "Acme", "ingest_aliases": ["team@example.com", "acme"]}, format="json")

    assert response.status_code == 201
    data = response.json()["data"]
    customer = Customer.objects.get(uuid=data["id"])
    assert customer.organization == organization
    assert data["external_id"] == "team@example.com"  # the first alias stands in for a missing external id
    assert data["ingest_aliases"] == ["team@example.com", "acme"]


def test_create_with_every_identifier_then_list_and_get(api_client):
    body = {"name": "Globex", "external_id": "g-1", "email": "ap@globex.test", "stripe_customer_id": "cus_G"}
    created = api_client.post(URL, body, format="json").json()["data"]

    listed = api_client.get(URL).json()
    fetched = api_client.get(f"{URL}/{created['id']}").json()["data"]

    assert [c["id"] for c in listed["data"]] == [created["id"]]
    assert listed["next"] is None
    assert fetched == created
    assert fetched["stripe_customer_id"] == "cus_G"


@pytest.mark.parametrize(
    ("second", "field"),
    [
        ({"name": "B", "external_id": "a-1"}, "external_id"),
        ({"name": "B", "external_id": "b-1", "ingest_aliases": ["a-1"]}, "ingest_aliases"),
        ({"name": "B", "external_id": "alias-a"}, "ingest_aliases"),
        ({"name": "B", "external_id": "b-1", "stripe_customer_id": "cus_A"}, "stripe_customer_id"),
    ],
)
def test_duplicate_identifiers_are_a_409(api_client, second, field):
    first = {"name": "A", "external_id": "a-1", "ingest_aliases": ["alias-a"], "stripe_customer_id": "cus_A"}
    assert api_client.post(URL, first, format="json").status_code == 201

    response = api_client.post(URL, second, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert response.json()["error"]["details"]["field"] == field
    assert Customer.objects.count() == 1


def test_validation_errors_name_the_field(api_client):
    response = api_client.post(URL, {"ingest_aliases": ["x"]}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "name"


def test_another_tenants_customers_are_invisible(api_client, other_client):
    foreign = CustomerFactory(organization=other_client.organization)

    assert api_client.get(URL).json()["data"] == []
    assert api_client.get(f"{URL}/{foreign.uuid}").status_code == 404
    assert api_client.get(f"{URL}/not-a-uuid").status_code == 404


def test_the_same_identifiers_are_free_in_another_organization(api_client, other_client):
    body = {"name": "Same", "external_id": "same", "ingest_aliases": ["same-alias"]}
    assert api_client.post(URL, body, format="json").status_code == 201
    assert other_client.post(URL, body, format="json").status_code == 201


@pytest.fixture
def lookups(monkeypatch):
    """The statements customers_resolve sends (raw psycopg, outside Django's query log)."""
    sent: list[str] = []
    fetch_all = customers_module.fetch_all
    monkeypatch.setattr(customers_module, "fetch_all", lambda sql, *a, **k: sent.append(sql) or fetch_all(sql, *a, **k))
    return sent


def test_resolution_is_set_based_and_creates_unknown_customers(organization, lookups):
    known = CustomerFactory(organization=organization, external_id="known", ingest_aliases=["k-alias"])
    linked = CustomerFactory(organization=organization, external_id="linked", stripe_customer_id="cus_L")
    refs = [
        CustomerRef("id", "known", "f"),
        CustomerRef("id", "k-alias", "f"),
        CustomerRef("id", str(known.uuid), "f"),
        CustomerRef("uuid", str(linked.uuid), "f"),
        CustomerRef("stripe", "cus_L", "f"),
        CustomerRef("stripe", "cus_NEW", "f"),
        *[CustomerRef("id", f"new-{n}", "f") for n in range(20)],
    ]

    resolved = customers_resolve(organization=organization, refs=refs)

    assert resolved["id", "known"] == resolved["id", "k-alias"] == resolved["id", str(known.uuid)] == known.id
    assert resolved["uuid", str(linked.uuid)] == resolved["stripe", "cus_L"] == linked.id
    new_stripe = Customer.objects.get(pk=resolved["stripe", "cus_NEW"])
    assert (new_stripe.external_id, new_stripe.stripe_customer_id) == ("cus_NEW", "cus_NEW")
    assert Customer.objects.filter(organization=organization).count() == 2 + 1 + 20
    # Lookup, aliases of the ids that are no external id, one insert of the 21 new, their re-read.
    assert len(lookups) == 4


def test_known_external_ids_resolve_in_one_query_without_an_alias_test(organization, lookups):
    customers = [CustomerFactory(organization=organization, external_id=f"c{n}") for n in range(5)]
    external_ids: dict[int, str] = {}

    resolved = customers_resolve(
        organization=organization, refs=[CustomerRef("id", f"c{n}", "f") for n in range(5)], external_ids=external_ids
    )

    assert resolved == {("id", customer.external_id): customer.id for customer in customers}
    assert external_ids == {customer.id: customer.external_id for customer in customers}
    assert len(lookups) == 1
    assert "ingest_aliases &&" not in lookups[0]


def test_an_alias_wins_over_the_uuid_of_another_customer(organization):
    by_uuid = CustomerFactory(organization=organization, external_id="u")
    by_alias = CustomerFactory(organization=organization, external_id="a", ingest_aliases=[str(by_uuid.uuid)])
    external_ids: dict[int, str] = {}

    resolved = customers_resolve(
        organization=organization, refs=[CustomerRef("id", str(by_uuid.uuid), "f")], external_ids=external_ids
    )

    assert resolved["id", str(by_uuid.uuid)] == by_alias.id
    assert external_ids[by_alias.id] == "a"


def test_unknown_uuid_is_not_resolved_nor_created(organization, other_client):
    foreign = CustomerFactory(organization=other_client.organization)
    refs = [CustomerRef("uuid", str(uuid.uuid4()), "f"), CustomerRef("uuid", str(foreign.uuid), "f")]

    assert customers_resolve(organization=organization, refs=refs) == {}
    assert not Customer.objects.filter(organization=organization).exists()


def test_external_id_wins_over_an_alias_of_another_customer(organization):
    by_alias = CustomerFactory(organization=organization, external_id="x", ingest_aliases=["shared"])
    by_external = CustomerFactory(organization=organization, external_id="shared")

    resolved = customers_resolve(organization=organization, refs=[CustomerRef("id", "shared", "f")])

    assert resolved["id", "shared"] == by_external.id != by_alias.id


def test_customer_create_service_defaults_external_id_to_the_uuid(organization):
    customer = customer_create(organization=organization, name="Nameless")
    assert customer.external_id == str(customer.uuid)


def _ingest_metronome(client, customer_id: str, transaction_id: str) -> None:
    usage = {
        "transaction_id": transaction_id,
        "customer_id": customer_id,
        "event_type": "tokens",
        "timestamp": timezone.now().isoformat(),
    }
    assert client.post("/api/v1/ingest", [usage], format="json").status_code == 200


def test_usage_sent_before_the_customer_exists_is_theirs_once_created_with_that_alias(api_client, organization):
    # Seed 001: "start flowing in usage for customers before they're created", then create the
    # customer with that identifier as an ingest alias "so the previous event gets matched".
    _ingest_metronome(api_client, "team@example.com", "t-1")

    response = api_client.post(URL, {"name": "Team", "ingest_aliases": ["team@example.com"]}, format="json")

    assert response.status_code == 201
    data = response.json()["data"]
    customer = Customer.objects.get()
    assert str(customer.uuid) == data["id"]
    assert (data["name"], data["external_id"], data["ingest_aliases"]) == (
        "Team",
        "team@example.com",
        ["team@example.com"],
    )
    assert list(UsageEvent.objects.values_list("customer_id", flat=True)) == [customer.pk]
    _ingest_metronome(api_client, "team@example.com", "t-2")
    assert UsageEvent.objects.filter(customer=customer).count() == 2


def test_completing_a_bare_customer_with_its_own_external_id_keeps_the_old_one_as_an_alias(api_client):
    _ingest_metronome(api_client, "team@example.com", "t-1")

    body = {"name": "Team", "external_id": "acct-7", "ingest_aliases": ["team@example.com"], "email": "t@example.com"}
    data = api_client.post(URL, body, format="json").json()["data"]

    assert (data["external_id"], data["ingest_aliases"], data["email"]) == (
        "acct-7",
        ["team@example.com"],
        "t@example.com",
    )
    listed = api_client.get("/api/v1/events?customer_id=acct-7").json()["data"]
    assert [event["customer_id"] for event in listed] == ["acct-7"]


def test_a_named_customer_or_two_bare_ones_still_conflict(api_client):
    api_client.post(URL, {"name": "Named", "external_id": "named"}, format="json")
    _ingest_metronome(api_client, "bare-a", "t-1")
    _ingest_metronome(api_client, "bare-b", "t-2")

    named = api_client.post(URL, {"name": "Again", "ingest_aliases": ["named"]}, format="json")
    both = api_client.post(URL, {"name": "Both", "ingest_aliases": ["bare-a", "bare-b"]}, format="json")

    assert (named.status_code, both.status_code) == (409, 409)
    assert Customer.objects.filter(name="").count() == 2
