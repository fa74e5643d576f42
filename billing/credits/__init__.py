"""Prepaid credits: the credit ledger, top-ups through Stripe, auto top-up and spending limits.

`arithmetic` is the pure core; `models`, `selectors` and `services` the Django around it; `views`,
`serializers` and `urls` the Cloudflare AI Gateway billing dialect (seed 004); `payments` the Stripe
calls, `webhooks` Stripe's answers, `tasks` the Celery tasks, `invoicing` how credits draw down on
invoices, `hooks` how credits plug into the rest of the project (from BillingConfig.ready()).
"""
