"""Ingest dialects: each parses its seed's JSON shape into `events.drafts.EventDraft`s, with no
database access, so every field rule is a plain function with unit tests.

Idempotency keys are namespaced per dialect (`md:`, `mt:`, `ts:` in front of the client's key):
the three dialects' keys come from unrelated generators (the SDK's counter, Metronome transaction
ids, Tanso event keys), and a collision between them would silently drop an unrelated event as a
"duplicate". Within a dialect a key is unique per organization, for ever.
"""

MARGINDASH_KEY_PREFIX = "md:"
METRONOME_KEY_PREFIX = "mt:"
TANSO_KEY_PREFIX = "ts:"
KEY_PREFIXES = (MARGINDASH_KEY_PREFIX, METRONOME_KEY_PREFIX, TANSO_KEY_PREFIX)


def client_key(stored_key: str) -> str:
    """The idempotency key as the client sent it (without the dialect namespace)."""
    return stored_key[3:] if stored_key[:3] in KEY_PREFIXES else stored_key
