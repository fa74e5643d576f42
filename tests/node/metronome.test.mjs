// Seed 001's walk-through with Metronome's own TypeScript SDK (@metronome/sdk, unpatched: only
// baseURL and bearerToken), against a live TokenLedger. Run by tests/contracts/test_node_clients.py,
// which starts the server, freezes its clock and passes:
//   TOKENLEDGER_BASE_URL, TOKENLEDGER_API_KEY, CONTRACT_STARTING_AT, EVENT_TIMESTAMP.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import Metronome from '@metronome/sdk';

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} must be set`);
  return value;
};

const client = new Metronome({
  bearerToken: env('TOKENLEDGER_API_KEY'),
  baseURL: env('TOKENLEDGER_BASE_URL'),
  maxRetries: 0,
});

test('seed 001: usage sent before the customer exists lands on its DRAFT invoice', async () => {
  const usage = [{
    transaction_id: 'seed-001-cluster-42',
    customer_id: 'team@example.com', // an ingest alias, before any customer has it
    event_type: 'langModel4',
    timestamp: env('EVENT_TIMESTAMP'),
    properties: { user_id: 'user-7', tokens: 1000000 },
  }];
  await client.v1.usage.ingest({ usage });
  await client.v1.usage.ingest({ usage }); // a resend is deduplicated on transaction_id

  const metric = await client.v1.billableMetrics.create({
    name: 'langModel4 tokens',
    event_type_filter: { in_values: ['langModel4'] },
    property_filters: [{ name: 'tokens', exists: true }, { name: 'user_id', exists: true }],
    aggregation_type: 'SUM',
    aggregation_key: 'tokens',
    group_keys: [['user_id']],
  });
  assert.match(metric.data.id, /^[0-9a-f-]{36}$/);

  const customer = await client.v1.customers.create({ name: 'Example Team', ingest_aliases: ['team@example.com'] });
  assert.equal(customer.data.name, 'Example Team');
  assert.deepEqual(customer.data.ingest_aliases, ['team@example.com']);

  const product = await client.v1.contracts.products.create({
    name: 'Language Model 4 Tokens (millions)',
    type: 'USAGE',
    billable_metric_id: metric.data.id,
    presentation_group_key: ['user_id'],
    quantity_conversion: { conversion_factor: 1000000, operation: 'DIVIDE', name: 'million tokens' },
  });
  const rateCard = await client.v1.contracts.rateCards.create({ name: 'Standard' });
  const rate = await client.v1.contracts.rateCards.rates.add({
    rate_card_id: rateCard.data.id,
    product_id: product.data.id,
    entitled: true,
    rate_type: 'FLAT',
    price: 50, // cents per million tokens: $0.50
    starting_at: '2024-01-01T00:00:00.000Z',
  });
  assert.equal(rate.data.rate_type, 'FLAT');
  assert.equal(rate.data.price, 50);

  const contract = await client.v1.contracts.create({
    customer_id: customer.data.id,
    rate_card_id: rateCard.data.id,
    starting_at: env('CONTRACT_STARTING_AT'),
  });
  assert.match(contract.data.id, /^[0-9a-f-]{36}$/);

  const drafts = [];
  for await (const invoice of client.v1.customers.invoices.list({ customer_id: customer.data.id, status: 'DRAFT' })) {
    drafts.push(invoice);
  }
  assert.equal(drafts.length, 1);
  const [draft] = drafts;
  assert.equal(draft.status, 'DRAFT');
  assert.equal(draft.customer_id, customer.data.id);
  assert.equal(draft.contract_id, contract.data.id);
  assert.equal(draft.total, 50); // the previously sent 1,000,000 tokens, applied
  assert.deepEqual(draft.credit_type, { id: 'USD', name: 'USD (cents)' });
  assert.equal(draft.line_items.length, 1);
  const [line] = draft.line_items;
  assert.equal(line.name, 'Language Model 4 Tokens (millions)');
  assert.equal(line.quantity, 1);
  assert.equal(line.total, 50);
  assert.deepEqual(line.presentation_group_values, { user_id: 'user-7' });

  const none = [];
  for await (const invoice of client.v1.customers.invoices.list({ customer_id: customer.data.id, status: 'FINALIZED' })) {
    none.push(invoice);
  }
  assert.deepEqual(none, []);
});

test('errors are HTTP errors the SDK raises', async () => {
  await assert.rejects(
    client.v1.customers.invoices.list({ customer_id: 'nobody-here' }),
    (error) => error instanceof Metronome.NotFoundError,
  );
  await assert.rejects(
    client.v1.contracts.rateCards.rates.add({
      rate_card_id: '00000000-0000-0000-0000-000000000000', product_id: 'x', entitled: true, rate_type: 'FLAT',
      starting_at: '2024-01-01T00:00:00.000Z',
    }),
    (error) => error instanceof Metronome.BadRequestError,
  );
});
