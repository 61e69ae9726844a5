import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { InvalidInputError } from '@ch8/errors';
import { parseGatewayConfig, parseVersionPolicies } from './config.ts';

test('defaults: the repository under CH8_HOME, port 50054, metrics on 9464', () => {
  const c = parseGatewayConfig({ CH8_HOME: '/srv/ch8' }, '/work');
  assert.equal(c.modelRepository, join('/srv/ch8', 'models'));
  assert.equal(c.address, '127.0.0.1:50054');
  assert.equal(c.metricsAddress, '127.0.0.1:9464');
  assert.equal(parseGatewayConfig({ CH8_MODEL_REPOSITORY: 'models' }, '/work').modelRepository, '/work/models');
});

test('version policies: NAME=VERSION pins, NAME=latest:N keeps N; bad entries name the variable', () => {
  assert.deepEqual(
    [...parseVersionPolicies('sst2=3, cnn=latest:2')],
    [
      ['sst2', { kind: 'pinned', version: 3 }],
      ['cnn', { kind: 'latest', count: 2 }],
    ],
  );
  for (const bad of ['sst2', 'sst2=0', 'sst2=latest:0', 'Bad Name=1', 'x=newest']) {
    assert.throws(
      () => parseVersionPolicies(bad),
      (e: unknown) => e instanceof InvalidInputError && e.field === 'CH8_GATEWAY_VERSION_POLICY',
      bad,
    );
  }
});

test('a call may not carry more texts than the queue holds', () => {
  assert.throws(
    () => parseGatewayConfig({ CH8_GATEWAY_MAX_TEXTS: '100', CH8_GATEWAY_MAX_QUEUE: '10' }),
    (e: unknown) => e instanceof InvalidInputError && e.field === 'CH8_GATEWAY_MAX_TEXTS',
  );
});
