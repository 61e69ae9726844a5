import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidInputError } from '@ch8/errors';
import { parseDatasetConfig } from './config.ts';

test('transport settings: plaintext, limits for long preparations, StreamBatches without a server deadline', () => {
  const { transport } = parseDatasetConfig({});
  assert.equal(transport.tls, undefined);
  assert.equal(transport.healthAddress, '');
  assert.deepEqual(transport.limits, {
    maxMessageBytes: 64 * 1024 * 1024,
    maxConcurrentCalls: 256,
    defaultDeadlineMs: 900_000,
    maxDeadlineMs: 3_600_000,
    methods: { StreamBatches: { defaultDeadlineMs: 0, maxDeadlineMs: 0 } },
    settings: 'CH8_DATASET',
  });
  const set = parseDatasetConfig({ CH8_DATASET_MAX_DEADLINE_MS: '0', CH8_DATASET_HEALTH_ADDR: '0.0.0.0:9470' });
  assert.equal(set.transport.limits.maxDeadlineMs, 0);
  assert.equal(set.transport.healthAddress, '0.0.0.0:9470');
  assert.throws(
    () => parseDatasetConfig({ CH8_DATASET_DEFAULT_DEADLINE_MS: '10', CH8_DATASET_MAX_DEADLINE_MS: '5' }),
    (e: unknown) => e instanceof InvalidInputError && e.field === 'CH8_DATASET_DEFAULT_DEADLINE_MS',
  );
  assert.throws(
    () => parseDatasetConfig({ CH8_TLS_CLIENT_AUTH: 'require' }),
    (e: unknown) => e instanceof InvalidInputError && /CH8_TLS_CLIENT_AUTH=require/.test(e.message),
  );
});
