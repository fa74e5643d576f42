"""DRF authentication for `Authorization: Bearer <api key>`."""

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from .api.throttling import FailedAuthenticationThrottle
from .models import ApiKey
from .services import API_KEY_PREFIX, api_key_authenticate


class ApiKeyUser:
    """The principal behind an API-key request: acts for the key's organization, not for a person."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, api_key: ApiKey):
        self.api_key = api_key
        self.organization = api_key.organization
        self.pk = None
        self.username = f"api-key:{api_key.prefix}"

    def __str__(self) -> str:
        return self.username


class ApiKeyAuthentication(BaseAuthentication):
    """Bearer API keys (`tl_live_…`). Other bearer tokens are left to other authenticators."""

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != b"bearer":
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <api key>'.")
        raw_key = parts[1].decode("latin-1")
        if not raw_key.startswith(API_KEY_PREFIX):
            return None
        failures = FailedAuthenticationThrottle(request)
        if failures.blocked():
            raise exceptions.Throttled(
                wait=failures.wait(), detail="Too many failed authentications from this address."
            )
        api_key = api_key_authenticate(raw_key)
        if api_key is None:
            failures.record_failure()
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return ApiKeyUser(api_key), api_key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="tokenledger"'
