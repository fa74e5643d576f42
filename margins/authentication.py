"""`Authorization: Bearer <CRON_SECRET>` for scheduled callers of GET /api/stripe/revenue-sync (seed 002)."""

import hmac

from django.conf import settings
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header


class CronCaller:
    """The principal of a request that presented the cron secret: acts for no organization."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    username = "cron"

    def __str__(self) -> str:
        return self.username


class CronSecretAuthentication(BaseAuthentication):
    """Accept a bearer token equal to CRON_SECRET (compared in constant time); refuse any other bearer
    token with 401. With CRON_SECRET unset, cron callers are refused."""

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != b"bearer":
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <secret>'.")
        secret = settings.CRON_SECRET
        if not secret or not hmac.compare_digest(parts[1], secret.encode()):
            raise exceptions.AuthenticationFailed("Invalid cron secret.")
        return CronCaller(), None

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="tokenledger"'
