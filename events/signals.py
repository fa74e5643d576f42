"""Signals events sends so that upper apps can react without events importing them.

usage_recorded: sent after the ingest transaction commits, once per request, with
`organization_id` and `customer_ids` (the customers whose usage changed), for whoever wants to
react to usage after the fact. (billing reacts through its ingest hook instead, which already
knows from ingest's first round trip whether the organization has anything to recompute.)
"""

from django.dispatch import Signal

usage_recorded = Signal()
