"""Exceptions the SDK raises into the caller's code.

Only ``guarded_call`` (budget refusals) and invalid arguments raise; delivery
problems never do: they are logged and counted (see ``AiCostCalc.stats()``).
"""

from __future__ import annotations

from typing import Literal

BlockScope = Literal["organization", "event_type", "customer"]


class BudgetError(Exception):
    """Base class of every refusal by ``guarded_call``; catch this to handle both."""


class BudgetExceeded(BudgetError):
    """The blocklist says this call must not run.

    ``scope`` names what is over budget: the whole ``organization``, the
    ``event_type`` or the ``customer``. When several apply, the widest wins.
    """

    def __init__(
        self,
        *,
        scope: BlockScope,
        customer_id: str,
        event_type: str,
        version: int | None,
    ) -> None:
        self.scope = scope
        self.customer_id = customer_id
        self.event_type = event_type
        self.version = version
        subject = {
            "organization": "the organization",
            "event_type": f"event type {event_type!r}",
            "customer": f"customer {customer_id!r}",
        }[scope]
        super().__init__(f"budget exceeded for {subject} (blocklist version {version})")


class BudgetUnavailable(BudgetError):
    """The blocklist could not be read and the client was built with ``fail_open=False``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
