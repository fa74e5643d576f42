"""`field__any=[...]` (accounts.fields.AnyOf): the same rows as `__in`, with one array parameter."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Organization
from events.models import Customer

pytestmark = pytest.mark.django_db


@pytest.fixture
def customers():
    organization = Organization.objects.create(name="Any Co")
    Customer.objects.bulk_create(
        [Customer(organization=organization, external_id=f"cust-{n:03d}", name=f"C {n}") for n in range(300)]
    )
    return Customer.objects.filter(organization=organization)


def test_any_matches_what_in_matches(customers):
    wanted = [f"cust-{n:03d}" for n in range(0, 300, 3)] + ["not-a-customer", "it's \"quoted\""]
    by_any = set(customers.filter(external_id__any=wanted).values_list("pk", flat=True))
    assert by_any == set(customers.filter(external_id__in=wanted).values_list("pk", flat=True))
    assert len(by_any) == 100


def test_any_of_an_empty_list_matches_nothing(customers):
    assert not customers.filter(external_id__any=[]).exists()


def test_any_takes_integers_and_uuids(customers):
    ids = list(customers.order_by("pk").values_list("pk", flat=True)[:5])
    assert sorted(customers.filter(pk__any=ids).values_list("pk", flat=True)) == ids
    organization = customers.first().organization
    assert Organization.objects.filter(pk__any=[uuid.uuid4(), organization.pk]).get() == organization


def test_the_list_is_one_parameter_not_one_per_value(customers):
    wanted = [f"cust-{n:03d}" for n in range(250)]
    sql, params = customers.filter(external_id__any=wanted).values_list("pk").query.sql_with_params()
    assert "= ANY(%s)" in sql
    assert wanted in params  # the whole list, as one parameter
    assert len(params) == 2  # with the organization's id
    with CaptureQueriesContext(connection) as queries:
        assert customers.filter(external_id__any=wanted).count() == 250
    assert "ANY(" in queries.captured_queries[-1]["sql"]
