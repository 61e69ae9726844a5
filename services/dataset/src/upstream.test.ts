import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DatasetService } from '@ch8/contracts/dataset';
import { vocabularyHash } from '@ch8/embeddings/vocabulary';
import { isKnownError } from '@ch8/errors';
import { createClient, type Client } from '@ch8/service-kit/client';
import { silentLogger } from '@ch8/service-kit/logger';
import { Code, GrpcError, statusOf } from '@ch8/service-kit/status';
import { parseDatasetConfig } from './config.ts';
import type { EmbeddingClient } from './prepare.ts';
import { createDatasetServer } from './server.ts';
import { dependencyError } from './upstream.ts';

test('a dependency failure becomes the typed error of its code; the status table sends the same code', () => {
  // [the dependency's code, the code our handler answers]: the same, except that a slow dependency is unavailable
  // and out of range is bad input; failures without a typed error are INTERNAL.
  const table: Array<[Code, Code]> = [
    [Code.UNAVAILABLE, Code.UNAVAILABLE],
    [Code.DEADLINE_EXCEEDED, Code.UNAVAILABLE],
    [Code.NOT_FOUND, Code.NOT_FOUND],
    [Code.INVALID_ARGUMENT, Code.INVALID_ARGUMENT],
    [Code.OUT_OF_RANGE, Code.INVALID_ARGUMENT],
    [Code.PERMISSION_DENIED, Code.PERMISSION_DENIED],
    [Code.FAILED_PRECONDITION, Code.FAILED_PRECONDITION],
    [Code.RESOURCE_EXHAUSTED, Code.RESOURCE_EXHAUSTED],
    [Code.ALREADY_EXISTS, Code.ALREADY_EXISTS],
    [Code.CANCELLED, Code.CANCELLED],
    [Code.INTERNAL, Code.INTERNAL],
    [Code.UNKNOWN, Code.INTERNAL],
    [Code.UNIMPLEMENTED, Code.INTERNAL],
  ];
  for (const [theirs, ours] of table) {
    const e = dependencyError('embedding service', 'LoadTable', new GrpcError(theirs, 'it said no'));
    assert.ok(!(e instanceof GrpcError), Code[theirs]);
    assert.equal(isKnownError(e), ours !== Code.INTERNAL, Code[theirs]);
    const s = statusOf(e);
    assert.equal(Code[s.code], Code[ours], Code[theirs]);
    assert.match(e.message, /embedding service.*LoadTable.*it said no/);
    assert.equal((e as Error & { cause?: unknown }).cause instanceof GrpcError, true);
  }
  const plain = new Error('boom');
  assert.equal(dependencyError('embedding service', 'LoadTable', plain), plain);
});

/** An embedding service stand-in whose GetVocabulary answers `tokens`. */
function stub(tokens: string[], options: { noTable?: boolean; hash?: string } = {}): EmbeddingClient {
  return {
    loadTable: async () => ({
      table: options.noTable
        ? undefined
        : { tableId: 't1', vocabHash: options.hash ?? vocabularyHash(tokens, 2), dim: 2, vocabSize: tokens.length },
    }),
    getVocabulary: async () => ({ tokens, vocabHash: options.hash ?? vocabularyHash(tokens, 2), dim: 2 }),
  } as unknown as EmbeddingClient;
}

let servers: Array<{ stop: () => Promise<void> }> = [];
async function serve(embedding: EmbeddingClient): Promise<Client<typeof DatasetService>> {
  const { server, close } = createDatasetServer({
    config: parseDatasetConfig({ CH8_LOG_LEVEL: 'error' }),
    logger: silentLogger,
    embedding,
  });
  const client = createClient(DatasetService, `127.0.0.1:${await server.listen('127.0.0.1:0')}`);
  server.ready();
  servers.push({
    stop: async () => {
      client.close();
      await server.shutdown(200);
      await close();
    },
  });
  return client;
}
before(() => {
  servers = [];
});
after(async () => {
  for (const s of servers) await s.stop();
});

async function codeOf(p: Promise<unknown>): Promise<[string, string]> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof GrpcError, String(e));
    return [Code[e.code] as string, e.details];
  }
  return ['OK', ''];
}

test('a vocabulary the embedding service sends is checked: malformed or another hash is FAILED_PRECONDITION; no table INTERNAL', async () => {
  const good = ['<pad>', 'good', 'bad', 'movie'];
  assert.equal((await codeOf((await serve(stub(good))).prepareDataset({})))[0], 'OK');
  const [dup, dupDetails] = await codeOf((await serve(stub(['<pad>', 'good', 'good']))).prepareDataset({}));
  assert.equal(dup, 'FAILED_PRECONDITION');
  assert.match(dupDetails, /malformed.*twice/);
  const [other, otherDetails] = await codeOf((await serve(stub(good, { hash: 'f'.repeat(64) }))).prepareDataset({}));
  assert.equal(other, 'FAILED_PRECONDITION');
  assert.match(otherDetails, /hashes to/);
  assert.deepEqual(await codeOf((await serve(stub(good, { noTable: true }))).prepareDataset({})), [
    'INTERNAL',
    'internal error',
  ]);
});
