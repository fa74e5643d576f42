from django.db import models

from .crypto import decrypt_secret, encrypt_secret


class EncryptedTextField(models.TextField):
    """A text column whose value is stored Fernet-encrypted and read back as plaintext."""

    description = "Text encrypted at rest"

    def from_db_value(self, value, expression, connection):
        return None if value is None else decrypt_secret(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return None if value is None else encrypt_secret(value)
