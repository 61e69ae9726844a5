import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidInputError } from '@ch8/errors';
import { parseGatewayConfig } from './config.ts';

test('transport settings: plaintext, limits that bound the memory of requests in flight', () => {
  const { transport } = parseGatewayConfig({});
  assert.equal(transport.tls, undefined);
  assert.equal(transport.healthAddress, '');
  assert.deepEqual(transport.limits, {
    maxMessageBytes: 2 * 1024 * 1024,
    maxConcurrentCalls: 128,
    defaultDeadlineMs: 30_000,
    maxDeadlineMs: 300_000,

    settings: 'CH8_GATEWAY',
  });
  const set = parseGatewayConfig({ CH8_GATEWAY_MAX_DEADLINE_MS: '0', CH8_GATEWAY_HEALTH_ADDR: '0.0.0.0:9470' });
  assert.equal(set.transport.limits.maxDeadlineMs, 0);
  assert.equal(set.transport.healthAddress, '0.0.0.0:9470');
  assert.throws(
    () => parseGatewayConfig({ CH8_GATEWAY_DEFAULT_DEADLINE_MS: '10', CH8_GATEWAY_MAX_DEADLINE_MS: '5' }),
    (e: unknown) => e instanceof InvalidInputError && e.field === 'CH8_GATEWAY_DEFAULT_DEADLINE_MS',
  );
  assert.throws(
    () => parseGatewayConfig({ CH8_TLS_CLIENT_AUTH: 'require' }),
    (e: unknown) => e instanceof InvalidInputError && /CH8_TLS_CLIENT_AUTH=require/.test(e.message),
  );
});
