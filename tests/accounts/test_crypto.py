from cryptography.fernet import Fernet

from accounts.crypto import decrypt_secret, encrypt_secret, reset_key_cache


def test_round_trip_and_ciphertext_hides_the_secret():
    reset_key_cache()
    ciphertext = encrypt_secret("rk_live_secret_value")

    assert "rk_live" not in ciphertext
    assert decrypt_secret(ciphertext) == "rk_live_secret_value"


def test_rotated_keys_still_decrypt_old_secrets(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SECRETS_ENCRYPTION_KEYS = [old]
    reset_key_cache()
    ciphertext = encrypt_secret("sk_test_abc")

    settings.SECRETS_ENCRYPTION_KEYS = [new, old]
    reset_key_cache()
    try:
        assert decrypt_secret(ciphertext) == "sk_test_abc"
    finally:
        reset_key_cache()
