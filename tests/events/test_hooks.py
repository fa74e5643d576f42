from datetime import UTC, datetime

from events import hooks


def test_ingest_hooks_get_the_new_events_and_block_sources_union(monkeypatch):
    monkeypatch.setattr(hooks, "_ingest_hooks", [])
    monkeypatch.setattr(hooks, "_block_sources", [])
    seen = []
    hooks.register_ingest_hook(lambda *, organization, events: seen.append((organization, list(events))))
    hooks.register_block_source(lambda *, organization: hooks.BlockedSet(customer_ids=frozenset({"a"})))
    hooks.register_block_source(
        lambda *, organization: hooks.BlockedSet(organization=True, event_types=frozenset({"x"}))
    )
    event = hooks.RecordedEvent(1, "org", 2, "chat", datetime(2026, 1, 1, tzinfo=UTC), {}, 10, 0)

    hooks.run_ingest_hooks(organization="org", events=[event])
    hooks.run_ingest_hooks(organization="org", events=[])
    blocked = hooks.blocked_by_sources(organization="org")

    assert seen == [("org", [event])]
    assert blocked == hooks.BlockedSet(organization=True, event_types=frozenset({"x"}), customer_ids=frozenset({"a"}))
