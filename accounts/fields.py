from django.db import models

from .crypto import decrypt_secret, encrypt_secret


class AnyOf(models.Lookup):
    """`field__any=[...]`: `field = ANY(%s)` with the whole list as one array parameter.

    `__in` renders one placeholder per value. For a page's worth of keys (the few hundred mapped
    Stripe ids that margins' unmatched list leaves out) that makes a query text psycopg cannot cache
    (it parses texts over 4 kB again on every call) and costs the ORM a conversion per value: ~4 ms
    of CPU a query of 200 ids on a 2-core VM, against ~1 ms with one array. An empty list matches
    nothing, as `__in=[]` does. PostgreSQL only.
    Registered on every field by `AccountsConfig.ready`.
    """

    lookup_name = "any"
    prepare_rhs = False  # the list is the parameter; Field.get_prep_value would take it for one value

    def get_db_prep_lookup(self, value, connection):
        field = self.lhs.output_field
        return "%s", [[field.get_db_prep_value(item, connection, prepared=False) for item in value]]

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} = ANY({rhs})", (*lhs_params, *rhs_params)


class EncryptedTextField(models.TextField):
    """A text column whose value is stored Fernet-encrypted and read back as plaintext."""

    description = "Text encrypted at rest"

    def from_db_value(self, value, expression, connection):
        return None if value is None else decrypt_secret(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return None if value is None else encrypt_secret(value)
