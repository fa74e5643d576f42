"""Encryption of secrets at rest (Stripe keys and the like) with Fernet (AES-128-CBC + HMAC-SHA256).

Keys come from SECRETS_ENCRYPTION_KEYS (newest first, so old ciphertexts stay readable while keys
rotate). In development, with none configured, a key is derived from SECRET_KEY.
"""

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class DecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key."""


@cache
def _fernet() -> MultiFernet:
    keys = list(settings.SECRETS_ENCRYPTION_KEYS)
    if not keys:
        digest = hashlib.sha256(f"tokenledger-secrets:{settings.SECRET_KEY}".encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(key.encode() if isinstance(key, str) else key) for key in keys])


def encrypt_secret(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt_secret(ciphertext: str) -> str:
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("stored secret cannot be decrypted with the configured keys") from exc


def reset_key_cache() -> None:
    """Forget the cached keys (tests that change SECRETS_ENCRYPTION_KEYS call this)."""
    _fernet.cache_clear()
