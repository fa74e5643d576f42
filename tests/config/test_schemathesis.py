"""The whole OpenAPI schema fuzzed with schemathesis, in-process (WSGI), with every check.

Each operation gets a bounded number of generated cases (SCHEMATHESIS_MAX_EXAMPLES, default 4), once
with an API key and once with a session (CSRF token included), so the run stays well under two
minutes on a busy machine. Any 500, any status, header, content type or body the schema does not
document, and any invalid input accepted, fails the test.
"""

import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.middleware.csrf import _get_new_csrf_string
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import ignored_auth, negative_data_rejection, positive_data_acceptance

from accounts.models import Role
from tests.factories import MembershipFactory

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "4"))


@pytest.fixture
def api_schema(db):
    # As Django's test client does: a request must not close the test's connection (its transaction).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def session_credentials(organization, client):
    membership = MembershipFactory(organization=organization, role=Role.OWNER)
    client.force_login(membership.user)
    token = _get_new_csrf_string()
    return {
        "headers": {"X-CSRFToken": token},
        "cookies": {"sessionid": client.cookies["sessionid"].value, "csrftoken": token},
    }


BUDGET = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


# POST /api/v1/events answers 200 with a per-event error for an invalid event (MarginDash: "an
# invalid event never sinks the others"), so schema-violating events are not refused as a whole.
PER_ITEM_ERRORS = {"POST /api/v1/events": [negative_data_rejection]}
# GET /api/stripe/revenue-sync is the cron's (CronSecret); a session caller's GET is a documented 405.
SESSION_EXCLUSIONS = {"GET /api/stripe/revenue-sync": [positive_data_acceptance]}


def _credentials(case, headers: dict, cookies: dict) -> dict:
    """The caller's credentials for this case, as explicit call arguments (the auth check then probes
    without them). A case generated to be invalid in its headers or cookies is sent without ours
    there, so what it was generated to break stays broken."""
    meta = case.meta
    kwargs = {}
    if headers and not (meta is not None and meta.is_negative_at(ParameterLocation.HEADER)):
        kwargs["headers"] = headers
    if cookies and not (meta is not None and meta.is_negative_at(ParameterLocation.COOKIE)):
        kwargs["cookies"] = cookies
    return kwargs


def fuzz(api_schema, *, headers: dict, cookies: dict | None = None, excluded=(), per_operation=None) -> list[str]:
    """Every operation, valid and invalid inputs, every check; the failures, one line each."""
    failures = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @BUDGET
            def check(case):
                case.call_and_validate(
                    excluded_checks=[
                        *excluded,
                        *PER_ITEM_ERRORS.get(operation.label, []),
                        *(per_operation or {}).get(operation.label, []),
                    ],
                    **_credentials(case, headers, cookies or {}),
                )

            try:
                check()
            except Unsatisfiable:  # nothing to make invalid (no parameters, no body): no negative cases
                continue
            except (Exception, BaseExceptionGroup) as exc:  # collect them all: one report for the whole schema
                failures.append(f"{operation.label} [{mode.value}]: {str(exc).strip()[:1500]}")
    return failures


def test_the_api_matches_its_schema_with_an_api_key(api_schema, api_key):
    failures = fuzz(api_schema, headers={"Authorization": f"Bearer {api_key}"})

    assert not failures, "\n\n".join(failures)


def test_the_api_matches_its_schema_with_a_session(api_schema, session_credentials):
    # ignored_auth cannot take a session cookie given as a call argument away, so it would see every
    # answer as "accepted without auth"; the API-key run and tests/margins cover auth enforcement.
    failures = fuzz(
        api_schema,
        headers=session_credentials["headers"],
        cookies=session_credentials["cookies"],
        excluded=[ignored_auth],
        per_operation=SESSION_EXCLUSIONS,
    )

    assert not failures, "\n\n".join(failures)
