"""Deleting an organization (or any owner of bulk rows) without loading or locking its bulk rows at once.

Django's cascade loads every related row it cannot delete with one statement (the ledger's events:
they cascade on to their vendor responses) and deletes it in one transaction; the admin's
confirmation page lists every one of them. For an organization with millions of events that is a
process holding millions of model instances, a page that never renders and, for the ledger, the
organization's exclusive ledger lock held for the whole time (events.locks).

So apps register their bulk models here (`register_bulk_models`): the ledger, the usage rollups.
- The admin's confirmation page (`deleted_objects_summary`) names them in one line per model
  instead of listing their rows.
- `deletion_check` runs Django's own collection over everything else, so a protected reference
  (a contract, an invoice) refuses the deletion before anything is deleted.
- `organization_delete` sends `organization_deleting` first: receivers delete their bulk rows in
  bounded slices, each in its own short transaction (events deletes the ledger so); then Django
  deletes the organization and what is left, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib.admin.utils import NestedObjects, quote
from django.db import models, router, transaction
from django.db.models.deletion import Collector, get_candidate_relations_to_delete
from django.dispatch import Signal
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.text import capfirst

from .models import Organization

# Sent with `organization` before an organization is deleted, outside any transaction: receivers
# delete their bulk rows of it in slices (see events.receivers).
organization_deleting = Signal()

_bulk_models: dict[type[models.Model], str] = {}


def register_bulk_models(*bulk: type[models.Model], note: str) -> None:
    """Models whose rows are too many to load in a cascade or list on a confirmation page. ``note``
    says on the page how they go (e.g. "deleted in slices before the customer")."""
    for model in bulk:
        _bulk_models[model] = note


class _BesideBulk:
    """A collector mixin that does not descend into the bulk models (see the module docstring)."""

    def related_objects(self, related_model, related_fields, objs):
        if related_model in _bulk_models:
            return related_model._base_manager.none()
        return super().related_objects(related_model, related_fields, objs)


class _CheckCollector(_BesideBulk, Collector):
    pass


class _SummaryCollector(_BesideBulk, NestedObjects):
    pass


def deletion_check(objs: Sequence[models.Model]) -> None:
    """Raise Django's ProtectedError (or RestrictedError) if deleting ``objs`` would be refused, without
    reading their bulk rows; so an owner's slices are never deleted for a deletion that then fails."""
    if not objs:
        return
    _CheckCollector(using=router.db_for_write(type(objs[0])), origin=objs).collect(list(objs))


def deleted_objects_summary(objs, request, admin_site):
    """`ModelAdmin.get_deleted_objects` without the bulk rows: Django's nested list (as
    django.contrib.admin.utils.get_deleted_objects builds it, with a collector that skips the bulk
    models) and counts for the rest, and one line per bulk model that a deletion reaches."""
    objs = list(objs)
    if not objs:
        return [], {}, set(), []
    collector = _SummaryCollector(using=router.db_for_write(type(objs[0])), origin=objs)
    collector.collect(objs)
    perms_needed = set()

    def format_callback(obj):
        opts = obj._meta
        label = f"{capfirst(opts.verbose_name)}: {obj}"
        if not admin_site.is_registered(type(obj)):
            return label
        if not admin_site.get_model_admin(type(obj)).has_delete_permission(request, obj):
            perms_needed.add(opts.verbose_name)
        try:
            url = reverse(f"{admin_site.name}:{opts.app_label}_{opts.model_name}_change", None, (quote(obj.pk),))
        except NoReverseMatch:
            return label
        return format_html('{}: <a href="{}">{}</a>', capfirst(opts.verbose_name), url, obj)

    to_delete = collector.nested(format_callback)
    protected = [format_callback(obj) for obj in collector.protected]
    model_count = {model._meta.verbose_name_plural: len(rows) for model, rows in collector.model_objs.items()}
    for model, note in _bulk_models.items():
        if _reaches(type(objs[0]), model):
            to_delete.append(f"{capfirst(model._meta.verbose_name_plural)}: all of them, {note} (not listed here)")
    return to_delete, model_count, perms_needed, protected


def _reaches(owner: type[models.Model], model: type[models.Model], seen: frozenset = frozenset()) -> bool:
    """Whether deleting an ``owner`` cascades to ``model`` (through any chain of cascading relations)."""
    if owner in seen:
        return False
    for relation in get_candidate_relations_to_delete(owner._meta):  # hidden ("+") relations too
        if relation.on_delete is not models.CASCADE:
            continue
        if relation.related_model is model or _reaches(relation.related_model, model, seen | {owner}):
            return True
    return False


def organization_delete(*, organization: Organization) -> None:
    """Delete an organization and everything it owns: checked first (nothing protected), its bulk rows
    deleted in slices by the `organization_deleting` receivers, then the rest by Django in one
    transaction. Stopped halfway, the organization is still there: delete it again."""
    deletion_check([organization])
    organization_deleting.send(sender=Organization, organization=organization)
    with transaction.atomic():
        organization.delete()


class BulkOwnerAdminMixin:
    """For the admin of a model that owns bulk rows: the confirmation page summarizes them, and the
    deletion runs through ``delete_object`` (a service that deletes them in slices) once the admin's
    own transaction has committed, so that each slice commits on its own."""

    def delete_object(self, obj) -> None:
        raise NotImplementedError

    def get_deleted_objects(self, objs, request):
        return deleted_objects_summary(objs, request, self.admin_site)

    def delete_model(self, request, obj) -> None:
        transaction.on_commit(lambda: self.delete_object(obj))

    def delete_queryset(self, request, queryset) -> None:
        objs = list(queryset)
        transaction.on_commit(lambda: [self.delete_object(obj) for obj in objs])
