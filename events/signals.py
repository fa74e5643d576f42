"""Signals events sends so that upper apps can react without events importing them.

usage_recorded: sent after the ingest transaction commits, once per request, with
`organization_id` and `customer_ids` (the customers whose usage changed). billing connects a
receiver that queues its debounced draft-invoice recompute and budget evaluation.
"""

from django.dispatch import Signal

usage_recorded = Signal()
