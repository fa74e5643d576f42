# ruff: noqa: S608  (SQL built from table names only; values are parameters)
"""Customers: created through the API (Metronome-style, with ingest aliases) or on first sight by
ingest, and resolved from any identifier by one set-based function."""

import uuid
from collections.abc import Iterable, Sequence

import orjson
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.api.errors import Conflict
from accounts.sql import fetch_all

from ..drafts import CustomerRef
from ..locks import organization_lock_key
from ..models import Customer

# "CUST": customer creation's lock, a 64-bit key from the organization's UUID (locks.organization_lock_key)
_CUSTOMER_CREATE_LOCK_NAMESPACE = 0x43555354

_TABLE = Customer._meta.db_table


def _as_uuid(value: str) -> str | None:
    if len(value) < 32:  # every form uuid.UUID accepts has 32 hex digits; skip the failed parse
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _partition(refs: Iterable[CustomerRef]) -> tuple[set[str], set[str], set[str]]:
    ids: set[str] = set()
    uuids: set[str] = set()
    stripes: set[str] = set()
    for ref in refs:
        if ref.kind == "id":
            ids.add(ref.value)
            as_uuid = _as_uuid(ref.value)
            if as_uuid:
                uuids.add(as_uuid)
        elif ref.kind == "uuid":
            uuids.add(ref.value)
        else:
            stripes.add(ref.value)
    return ids, uuids, stripes


def customers_lookup_statement(*, organization_id, refs: Iterable[CustomerRef]) -> tuple[str, dict]:
    """The query `customers_resolve` starts with, for a caller that sends it along with others in
    one round trip and passes its rows back as `found`."""
    ids, uuids, stripes = _partition(refs)
    return _select_statement(organization_id, ids | stripes, uuids, stripes)


def customers_resolve(
    *,
    organization,
    refs: Iterable[CustomerRef],
    now=None,
    found: Sequence[tuple] | None = None,
    external_ids: dict[int, str] | None = None,
) -> dict[tuple[str, str], int]:
    """Customer primary keys for `refs`, keyed by `(kind, value)`, in one query when every value is
    a known external id, uuid or Stripe id (at most four queries otherwise).

    - kind "id": the organization's external id, else an ingest alias, else our uuid; an unknown
      value creates a customer with that external id (seed 000: "auto-creates the customer").
    - kind "stripe": the Stripe customer id (else a customer whose external id is that id); an
      unknown one creates a customer with it as both external id and Stripe id.
    - kind "uuid": our customer uuid; never created, so an unknown one is simply absent.

    Aliases are looked up only for the ids that are no customer's external id: almost every event
    names its customer by external id, and an alias test in the first query (`ingest_aliases &&`
    the batch's ids, beside three `= ANY`) made PostgreSQL evaluate it on every customer row.
    Everything is scoped to `organization`: another tenant's uuid or alias does not resolve.
    Creation is `INSERT … ON CONFLICT DO NOTHING` in a stable order followed by a re-read, so
    concurrent batches naming the same new customer agree on one row and cannot deadlock.
    `found`: the rows of `customers_lookup_statement` for these refs (or more), already fetched.
    `external_ids`: if given, filled with the external id of every customer read, by primary key.
    """
    ids, uuids, stripes = _partition(refs)
    if not (ids or uuids or stripes):
        return {}

    rows = list(found) if found is not None else _select(organization.pk, ids | stripes, uuids, stripes)
    known = {row[1] for row in rows}
    unmatched = sorted(value for value in ids if value not in known)
    if unmatched:
        rows += _select_aliases(organization.pk, unmatched)
    resolved = _match(rows, ids, uuids, stripes)
    missing_ids = sorted(value for value in ids if ("id", value) not in resolved)
    missing_stripes = sorted(value for value in stripes if ("stripe", value) not in resolved)
    if missing_ids or missing_stripes:
        _insert(organization.pk, missing_ids, missing_stripes, now or timezone.now())
        new_rows = _select(organization.pk, set(missing_ids) | set(missing_stripes), set(), set(missing_stripes))
        resolved.update(_match(new_rows, set(missing_ids), set(), set(missing_stripes)))
        rows += new_rows
    if external_ids is not None:
        external_ids.update((row[0], row[1]) for row in rows)
    return resolved


_COLUMNS = "c.id, c.external_id, c.uuid::text, c.ingest_aliases, c.stripe_customer_id"


def _select_statement(organization_id, external_ids: set, uuids: set, stripes: set) -> tuple[str, dict]:
    # One part per kind of identifier that has values (a customer found twice is harmless). The
    # external ids travel as one JSON array joined to the (organization, external id) key: a text[]
    # parameter costs the client a quoting check (a regular expression) per element, and a filter
    # `= ANY(<array from a subquery>)` is tested element by element on every row a scan reads.
    parts = []
    if external_ids:
        parts.append(
            f"SELECT {_COLUMNS} FROM json_array_elements_text(%(external_ids)s::json) AS v(value) "
            f"JOIN {_TABLE} c ON c.organization_id = %(organization)s AND c.external_id = v.value"
        )
    if uuids:
        parts.append(_where("c.uuid = ANY(%(uuids)s::uuid[])"))
    if stripes:
        parts.append(_where("c.stripe_customer_id = ANY(%(stripes)s::text[])"))
    return (
        " UNION ALL ".join(parts) or _where("false"),
        {"organization": organization_id, "external_ids": orjson.dumps(list(external_ids)).decode(),
         "uuids": list(uuids), "stripes": list(stripes)},
    )


def _where(test: str) -> str:
    return f"SELECT {_COLUMNS} FROM {_TABLE} c WHERE c.organization_id = %(organization)s AND {test}"


def _select(organization_id, external_ids: set, uuids: set, stripes: set) -> list[tuple]:
    # Unprepared: planned for the customer table as it is (see accounts.sql).
    return fetch_all(*_select_statement(organization_id, external_ids, uuids, stripes), prepare=False)


def _select_aliases(organization_id, values: list[str]) -> list[tuple]:
    return fetch_all(
        f"SELECT {_COLUMNS} FROM {_TABLE} c "
        "WHERE c.organization_id = %s AND c.ingest_aliases && %s::varchar[]",
        [organization_id, values],
        prepare=False,
    )


def _match(rows: Sequence[tuple], ids: set, uuids: set, stripes: set) -> dict[tuple[str, str], int]:
    by_external, by_alias, by_uuid, by_stripe = {}, {}, {}, {}
    for pk, external_id, customer_uuid, aliases, stripe_id in rows:
        by_external[external_id] = pk
        by_uuid[customer_uuid] = pk
        for alias in aliases or ():
            by_alias.setdefault(alias, pk)
        if stripe_id:
            by_stripe[stripe_id] = pk
    resolved: dict[tuple[str, str], int] = {}
    for value in ids:
        pk = by_external.get(value) or by_alias.get(value) or by_uuid.get(_as_uuid(value) or "")
        if pk:
            resolved["id", value] = pk
    for value in uuids:
        if value in by_uuid:
            resolved["uuid", value] = by_uuid[value]
    for value in stripes:
        pk = by_stripe.get(value) or by_external.get(value)
        if pk:
            resolved["stripe", value] = pk
    return resolved


def _insert(organization_id, external_ids: list[str], stripe_ids: list[str], now) -> None:
    external = [*external_ids, *stripe_ids]
    stripe = [None] * len(external_ids) + list(stripe_ids)
    order = sorted(range(len(external)), key=lambda index: external[index])
    fetch_all(
        f"INSERT INTO {_TABLE} (organization_id, uuid, external_id, name, email, ingest_aliases, "
        "stripe_customer_id, created_at) "
        "SELECT %s, gen_random_uuid(), u.external_id, '', '', '{}', u.stripe_id, %s "
        "FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS u(external_id, stripe_id, position) "
        "ORDER BY u.position ON CONFLICT DO NOTHING",
        [organization_id, now, [external[i] for i in order], [stripe[i] for i in order]],
    )


@transaction.atomic
def customer_create(
    *,
    organization,
    name: str = "",
    external_id: str = "",
    email: str = "",
    ingest_aliases: Sequence[str] = (),
    stripe_customer_id: str | None = None,
) -> Customer:
    """A customer with its identifiers (Metronome: name and `ingest_aliases`).

    Every identifier must be free in the organization: an external id, alias or Stripe id already
    used by another customer is a 409 `conflict` naming it. Without an external id, the first
    ingest alias is used, else our uuid, so every customer can be named by ingest.

    Usage may arrive before its customer is created (seed 001: "start flowing in usage for
    customers before they're created"); ingest then made a bare customer carrying only that
    identifier. Creating the customer with that identifier completes the bare one in place (same
    uuid, so the earlier usage is theirs) instead of answering 409.
    """
    aliases = list(dict.fromkeys(alias for alias in ingest_aliases if alias))
    customer_uuid = uuid.uuid4()
    explicit_external_id = external_id
    external_id = external_id or (aliases[0] if aliases else str(customer_uuid))
    identifiers = list(dict.fromkeys([external_id, *aliases]))
    # One creation at a time per organization: alias uniqueness is not a database constraint.
    with connection.cursor() as cursor:
        key = organization_lock_key(organization.pk, _CUSTOMER_CREATE_LOCK_NAMESPACE)
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
    clash = Q(external_id__in=identifiers) | Q(ingest_aliases__overlap=identifiers)
    if stripe_customer_id:
        clash |= Q(stripe_customer_id=stripe_customer_id)
    clashes = list(Customer.objects.filter(clash, organization=organization).order_by("pk")[:2])
    if len(clashes) == 1 and _is_bare(clashes[0], stripe_customer_id):
        return _complete_bare_customer(
            clashes[0],
            name=name,
            email=email,
            external_id=explicit_external_id,
            ingest_aliases=aliases,
            stripe_customer_id=stripe_customer_id,
        )
    existing = clashes[0] if clashes else None
    if existing is not None:
        raise Conflict(
            "A customer with one of these identifiers already exists.",
            details={
                "customer_id": str(existing.uuid),
                "field": _clashing_field(existing, identifiers, stripe_customer_id),
            },
        )
    try:
        with transaction.atomic():
            return Customer.objects.create(
                organization=organization,
                uuid=customer_uuid,
                external_id=external_id,
                name=name,
                email=email,
                ingest_aliases=aliases,
                stripe_customer_id=stripe_customer_id or None,
            )
    except IntegrityError:
        # Ingest created a customer with the same external id or Stripe id meanwhile.
        raise Conflict("A customer with one of these identifiers already exists.") from None


def _is_bare(customer: Customer, stripe_customer_id: str | None) -> bool:
    """Made by ingest from an identifier alone (no name, e-mail or aliases; the API always sets a
    name), and not linked to a different Stripe customer."""
    if customer.name or customer.email or customer.ingest_aliases:
        return False
    return not stripe_customer_id or customer.stripe_customer_id in (None, stripe_customer_id)


def _complete_bare_customer(
    customer: Customer,
    *,
    name: str,
    email: str,
    external_id: str,
    ingest_aliases: list[str],
    stripe_customer_id: str | None,
) -> Customer:
    aliases = list(ingest_aliases)
    if external_id and external_id != customer.external_id:
        # The identifier usage already arrived under keeps resolving to this customer.
        aliases = list(dict.fromkeys([*aliases, customer.external_id]))
        customer.external_id = external_id
    customer.name = name
    customer.email = email
    customer.ingest_aliases = aliases
    customer.stripe_customer_id = stripe_customer_id or customer.stripe_customer_id
    customer.save(update_fields=["external_id", "name", "email", "ingest_aliases", "stripe_customer_id"])
    return customer


def _clashing_field(existing: Customer, identifiers: list[str], stripe_customer_id: str | None) -> str:
    if stripe_customer_id and existing.stripe_customer_id == stripe_customer_id:
        return "stripe_customer_id"
    if existing.external_id in identifiers[:1]:
        return "external_id"
    return "ingest_aliases"
