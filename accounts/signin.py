"""Sign-ins (the dashboard's `/login/` and the admin's), limited per client address.

Failed sign-ins count in the same per-address window as failed API-key authentications
(`accounts.api.throttling.FailedAuthenticationThrottle`, API_RATE_LIMIT_AUTH_FAILURES). Over the
limit, `ThrottledModelBackend` refuses every sign-in from that address, a right password included,
until the window has room again: guessing passwords from one address stops at the limit. The
dashboard's form then answers 429 with `Retry-After` and says why; the admin's form shows its usual
error. Sign-ins without a request (`Client.login` in tests, `manage.py` code) are not counted.
"""

from django.contrib.auth import views as auth_views
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver

from .api.throttling import FailedAuthenticationThrottle

_REFUSED = "_tokenledger_signin_refused"  # set on a request whose sign-in was refused unchecked


class ThrottledModelBackend(ModelBackend):
    """Django's username/password backend, refusing an address over the failed-authentication limit."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is not None and FailedAuthenticationThrottle(request).blocked():
            setattr(request, _REFUSED, True)
            raise PermissionDenied("Too many failed sign-ins from this address.")  # no other backend is tried
        return super().authenticate(request, username=username, password=password, **kwargs)


@receiver(user_login_failed, dispatch_uid="accounts.signin.count_failure")
def count_failed_signin(sender, credentials, request=None, **kwargs) -> None:
    """A wrong username or password counts against the client's address (a refused one does not)."""
    if request is not None and not getattr(request, _REFUSED, False):
        FailedAuthenticationThrottle(request).record_failure()


class SignInView(auth_views.LoginView):
    """`/login/`: over the limit, the form answers 429 with `Retry-After` and tells the person to wait."""

    template_name = "registration/login.html"

    def post(self, request, *args, **kwargs):
        failures = FailedAuthenticationThrottle(request)
        if not failures.blocked():
            return super().post(request, *args, **kwargs)
        wait = max(1, int(failures.wait() or 1))
        form = self.get_form_class()(request)  # unbound: the credentials are not even checked
        refused = f"Too many failed sign-ins from this address. Try again in {wait} seconds."
        response = self.render_to_response(self.get_context_data(form=form, refused=refused))
        response.status_code = 429
        response["Retry-After"] = str(wait)
        return response
