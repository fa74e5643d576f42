"""The whole OpenAPI schema fuzzed with schemathesis, in-process (WSGI), with every check.

Each operation gets a bounded number of generated cases (SCHEMATHESIS_MAX_EXAMPLES, default 8), once
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
from schemathesis import GenerationMode

from accounts.models import Role
from tests.factories import MembershipFactory

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "8"))


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


def fuzz(api_schema, **call_kwargs) -> list[str]:
    """Every operation, valid and invalid inputs, every check; the failures, one line each."""
    failures = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @BUDGET
            def check(case):
                case.call_and_validate(**call_kwargs)

            try:
                check()
            except (Exception, BaseExceptionGroup) as exc:  # collect them all: one report for the whole schema
                failures.append(f"{operation.label} [{mode.value}]: {str(exc).strip()[:1500]}")
    return failures


def test_the_api_matches_its_schema_with_an_api_key(api_schema, api_key):
    failures = fuzz(api_schema, headers={"Authorization": f"Bearer {api_key}"})

    assert not failures, "\n\n".join(failures)


def test_the_api_matches_its_schema_with_a_session(api_schema, session_credentials):
    failures = fuzz(api_schema, headers=session_credentials["headers"], cookies=session_credentials["cookies"])

    assert not failures, "\n\n".join(failures)
