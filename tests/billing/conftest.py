# Fixtures of the credit tests (tests/billing/credit_helpers.py), shared by the test_credit_* modules.
from tests.billing.credit_helpers import customer, stripe_api, stripe_organization  # noqa: F401
