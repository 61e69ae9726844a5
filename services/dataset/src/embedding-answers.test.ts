/** PrepareDataset against embedding-service stand-ins: what the dataset service makes of the answers it gets. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DatasetService } from '@ch8/contracts/dataset';
import { vocabularyHash } from '@ch8/embeddings/vocabulary';
import { createClient, type Client } from '@ch8/service-kit/client';
import { silentLogger } from '@ch8/service-kit/logger';
import { Code, GrpcError } from '@ch8/service-kit/status';
import { parseDatasetConfig } from './config.ts';
import type { EmbeddingClient } from './prepare.ts';
import { createDatasetServer } from './server.ts';

/** An embedding service stand-in whose GetVocabulary answers `tokens` (LoadTable fails with `fail` if given). */
function stub(tokens: string[], options: { noTable?: boolean; hash?: string; fail?: Code } = {}): EmbeddingClient {
  return {
    loadTable: async () => {
      if (options.fail !== undefined) throw new GrpcError(options.fail, 'it said no');
      return {
        table: options.noTable
          ? undefined
          : { tableId: 't1', vocabHash: options.hash ?? vocabularyHash(tokens, 2), dim: 2, vocabSize: tokens.length },
      };
    },
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

test('the vocabulary the embedding service sends is checked: malformed or another hash is FAILED_PRECONDITION; no table INTERNAL', async () => {
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

test("the embedding service's failures keep their meaning; none reaches the caller as our INTERNAL", async () => {
  const good = ['<pad>', 'good'];
  const table: Array<[Code, string]> = [
    [Code.UNAVAILABLE, 'UNAVAILABLE'],
    [Code.DEADLINE_EXCEEDED, 'UNAVAILABLE'],
    [Code.NOT_FOUND, 'NOT_FOUND'],
    [Code.INVALID_ARGUMENT, 'INVALID_ARGUMENT'],
    [Code.PERMISSION_DENIED, 'PERMISSION_DENIED'],
    [Code.INTERNAL, 'UNAVAILABLE'],
  ];
  for (const [theirs, ours] of table) {
    const [code, details] = await codeOf((await serve(stub(good, { fail: theirs }))).prepareDataset({}));
    assert.equal(code, ours, Code[theirs]);
    assert.match(details, /embedding service LoadTable.*it said no/);
  }
});
