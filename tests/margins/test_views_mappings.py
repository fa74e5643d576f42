"""GET/POST/DELETE /api/customer-mappings and the approve/reject endpoints."""

import uuid

import pytest

from margins.models import CustomerMapping
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db


def pending(organization, stripe_id="cus_pending1", tag="acme", confidence="0.81") -> CustomerMapping:
    return CustomerMapping.objects.create(
        organization=organization, stripe_customer_id=stripe_id, tag_value=tag, match_type="auto", status="pending",
        reason="similarity", confidence=confidence,
    )


def test_post_creates_then_upserts_on_stripe_id_and_tag_key(member_client, organization):
    client = member_client(role="member")

    created = client.post(
        "/api/customer-mappings", {"stripeCustomerId": "cus_abc123", "tagValue": "acme-corp"}, format="json"
    )
    updated = client.post(
        "/api/customer-mappings",
        {"stripeCustomerId": "cus_abc123", "tagValue": "acme-2", "tagKey": "customer", "matchType": "auto"},
        format="json",
    )

    assert created.status_code == 201
    body = created.json()["data"]
    assert (body["stripeCustomerId"], body["tagValue"], body["tagKey"]) == ("cus_abc123", "acme-corp", "customer")
    assert (body["matchType"], body["status"], body["confidence"]) == ("manual", "active", None)
    assert updated.status_code == 200
    assert updated.json()["data"]["id"] == body["id"]
    assert (updated.json()["data"]["tagValue"], updated.json()["data"]["matchType"]) == ("acme-2", "auto")
    assert CustomerMapping.objects.filter(organization=organization).count() == 1


def test_post_over_a_pending_suggestion_makes_it_active(member_client, organization):
    suggestion = pending(organization)

    response = member_client().post(
        "/api/customer-mappings", {"stripeCustomerId": suggestion.stripe_customer_id, "tagValue": "other"},
        format="json",
    )

    assert response.status_code == 200
    suggestion.refresh_from_db()
    assert (suggestion.status, suggestion.match_type, suggestion.tag_value) == ("active", "manual", "other")
    assert suggestion.confidence is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tagValue": "x"}, "stripeCustomerId"),
        ({"stripeCustomerId": "cus_1"}, "tagValue"),
        ({"stripeCustomerId": "acme", "tagValue": "x"}, "stripeCustomerId"),
        ({"stripeCustomerId": "cus_1", "tagValue": "x", "tagKey": "team"}, "tagKey"),
        ({"stripeCustomerId": "cus_1", "tagValue": "x", "matchType": "guess"}, "matchType"),
        ({"stripeCustomerId": "cus_1", "tagValue": "x" * 256}, "tagValue"),
    ],
)
def test_post_validation(member_client, organization, body, field):
    response = member_client().post("/api/customer-mappings", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["details"]["field"] == field
    assert not CustomerMapping.objects.exists()


def test_get_lists_only_the_callers_mappings(member_client, organization):
    pending(organization)
    CustomerMapping.objects.create(organization=OrganizationFactory(), stripe_customer_id="cus_x", tag_value="theirs")

    response = member_client(role="viewer").get("/api/customer-mappings")

    assert response.status_code == 200
    (row,) = response.json()["data"]
    assert row["stripeCustomerId"] == "cus_pending1"
    assert (row["matchType"], row["status"], row["confidence"]) == ("auto", "pending", 0.81)


def test_viewer_cannot_write(member_client, organization):
    response = member_client(role="viewer").post(
        "/api/customer-mappings", {"stripeCustomerId": "cus_1", "tagValue": "x"}, format="json"
    )

    assert response.status_code == 403
    assert response.json()["error"]["details"]["required_role"] == "member"


def test_delete_by_id(member_client, organization):
    mapping = pending(organization)

    response = member_client().delete(f"/api/customer-mappings?id={mapping.id}")

    assert response.status_code == 200
    assert response.json()["data"] == {"deleted": True, "id": str(mapping.id)}
    assert not CustomerMapping.objects.exists()


def test_delete_missing_unknown_or_foreign_id(member_client, organization):
    theirs = pending(OrganizationFactory())
    client = member_client()

    missing = client.delete("/api/customer-mappings")
    malformed = client.delete("/api/customer-mappings?id=not-a-uuid")
    unknown = client.delete(f"/api/customer-mappings?id={uuid.uuid4()}")
    foreign = client.delete(f"/api/customer-mappings?id={theirs.id}")

    assert missing.status_code == 400 and missing.json()["error"]["details"]["field"] == "id"
    assert malformed.status_code == 404
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    assert foreign.status_code == 404
    assert CustomerMapping.objects.filter(pk=theirs.pk).exists()


def test_approve_and_reject_pending_matches(member_client, organization):
    to_approve = pending(organization, "cus_a1")
    to_reject = pending(organization, "cus_r1")
    client = member_client()

    approved = client.post(f"/api/customer-mappings/{to_approve.id}/approve")
    rejected = client.post(f"/api/customer-mappings/{to_reject.id}/reject")
    again = client.post(f"/api/customer-mappings/{to_approve.id}/reject")

    assert approved.status_code == 200 and approved.json()["data"]["status"] == "active"
    assert approved.json()["data"]["matchType"] == "auto"
    assert rejected.status_code == 200 and rejected.json()["data"]["status"] == "rejected"
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


def test_review_of_foreign_mapping_is_404_and_viewer_cannot_review(member_client, organization):
    theirs = pending(OrganizationFactory())
    mine = pending(organization)

    assert member_client().post(f"/api/customer-mappings/{theirs.id}/approve").status_code == 404
    assert member_client(role="viewer").post(f"/api/customer-mappings/{mine.id}/approve").status_code == 403
    theirs.refresh_from_db()
    mine.refresh_from_db()
    assert theirs.status == mine.status == "pending"
