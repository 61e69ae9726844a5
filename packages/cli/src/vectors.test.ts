import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readTable } from '@ch8/embeddings/table-file';
import { randomEntries, writeVectorFile } from '@ch8/embeddings/write';
import type { Command } from './command.ts';
import { TABLE_FILE, vectorsLookupCommand, vectorsPruneCommand, type PruneResult } from './commands/vectors.ts';
import { ROOT, startStack } from './launch.ts';
import { runCommand } from './testing.ts';

const DIM = 6;
const ENTRIES = randomEntries(['the', 'movie', 'was', 'good', 'bad', 'plot', 'unused', 'words'], DIM, 3);
const vectorOf = (w: string) => Array.from(ENTRIES.find(([x]) => x === w)![1]);
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ch8-cli-vectors-'));
  await writeVectorFile(join(dir, 'vecs.bin'), 'word2vec-binary', ENTRIES, DIM);
  await writeVectorFile(join(dir, 'vecs.txt.gz'), 'glove-text', ENTRIES, DIM, { gzip: true });
  await writeFile(join(dir, 'train.tsv'), 'sentence\tlabel\nThe movie was GOOD \t1\nthe plot was bad zzz\t0\n');
  await writeFile(join(dir, 'dev.tsv'), 'sentence\tlabel\nqqq movie\t1\n');
  await writeFile(join(dir, 'garbled.txt'), '5 six\nthe 1 2\n');
});
after(() => rm(dir, { recursive: true, force: true }));

async function run(cmd: Command, argv: string[]) {
  const r = await runCommand(cmd, argv, { cwd: dir });
  assert.notEqual(r.value, undefined, 'one result');
  return { ...r, result: r.value };
}

describe('vectors prune / lookup in-process', () => {
  test('prunes to the TSV words, writes the table file, reports coverage; lookup reads it back exactly', async () => {
    const r = await run(vectorsPruneCommand, [
      '--source',
      'vecs.bin',
      '--words-from',
      'train.tsv',
      'dev.tsv',
      '--out',
      'out1',
    ]);
    assert.equal(r.code, 0);
    const rep = r.result as PruneResult;
    // words: the movie was good plot bad zzz qqq
    assert.equal(rep.requested, 8);
    assert.equal(rep.found, 6);
    assert.equal(rep.missing, 2);
    assert.deepEqual(rep.missing_sample, ['qqq', 'zzz']);
    assert.equal(rep.dim, DIM);
    assert.equal(rep.vocab_size, 7);
    assert.equal(rep.format, 'word2vec-binary');
    assert.equal(rep.table_file, join(dir, 'out1', TABLE_FILE));
    assert.ok(rep.peak_rss_bytes > 0 && rep.bytes_read > 0 && rep.seconds > 0);
    const { table } = await readTable(join(dir, 'out1', TABLE_FILE));
    assert.equal(table.vocab.hash, rep.vocab_hash);
    assert.deepEqual(table.vocab.tokens, ['<pad>', 'the', 'movie', 'was', 'good', 'bad', 'plot']);
    assert.ok(r.logs.some((l) => l.includes('8 distinct words')));

    const l = await run(vectorsLookupCommand, ['--table', 'out1', 'good', 'nope', '<pad>']);
    assert.deepEqual(l.result, {
      tokens: [
        { token: 'good', id: 4, vector: vectorOf('good') },
        { token: 'nope', id: null, vector: null },
        { token: '<pad>', id: 0, vector: new Array(DIM).fill(0) },
      ],
    });
  });

  test('--all keeps every word (gzipped GloVe); lookup takes the file itself too', async () => {
    const r = await run(vectorsPruneCommand, ['--source', 'vecs.txt.gz', '--all', '--out', 'out2']);
    const rep = r.result as PruneResult;
    assert.equal(rep.requested, null);
    assert.equal(rep.vocab_size, ENTRIES.length + 1);
    assert.equal(rep.format, 'glove-text+gzip');
    const l = await run(vectorsLookupCommand, ['--table', join('out2', TABLE_FILE), 'words']);
    assert.deepEqual(l.result, { tokens: [{ token: 'words', id: 8, vector: vectorOf('words') }] });
  });

  test('bad usage and bad input are typed errors', async () => {
    const prune = (argv: string[]) => runCommand(vectorsPruneCommand, argv, { cwd: dir });
    const lookup = (argv: string[]) => runCommand(vectorsLookupCommand, argv, { cwd: dir });
    await assert.rejects(prune(['--source', 'vecs.bin', '--words-from', 'train.tsv']), {
      name: 'InvalidInputError',
      message: /--out/,
    });
    await assert.rejects(prune(['--source', 'vecs.bin', '--out', 'x']), {
      name: 'InvalidInputError',
      message: /--words-from/,
    });
    await assert.rejects(prune(['--source', 'vecs.bin', '--all', '--words-from', 'train.tsv', '--out', 'x']), {
      name: 'InvalidInputError',
    });
    await assert.rejects(prune(['--source', 'vecs.bin', '--all', '--out', 'x', '--format', 'xml']), {
      name: 'InvalidInputError',
      message: /--format/,
    });
    await assert.rejects(prune(['--source', 'nope.bin', '--all', '--out', 'x']), { name: 'NotFoundError' });
    await assert.rejects(prune(['--source', 'vecs.bin', '--words-from', 'nope.tsv', '--out', 'x']), {
      name: 'NotFoundError',
    });
    await assert.rejects(prune(['--source', 'garbled.txt', '--all', '--out', 'x']), {
      name: 'InvalidInputError',
      message: /garbled\.txt, line 1/,
    });
    await assert.rejects(lookup(['--table', 'out1']), { name: 'InvalidInputError', message: /WORD/ });
    await assert.rejects(lookup(['good']), { name: 'InvalidInputError', message: /--table/ });
    await assert.rejects(lookup(['--table', 'missing-dir', 'good']), { name: 'NotFoundError' });
    await assert.rejects(lookup(['--addr', '127.0.0.1:1', 'good']), {
      name: 'InvalidInputError',
      message: /--table-id/,
    });
    await assert.rejects(stat(join(dir, 'x', TABLE_FILE)), { code: 'ENOENT' });
  });
});

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'packages/cli/src/main.ts'), ...args], {
      cwd: ROOT,
      env: { ...process.env, INIT_CWD: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('the real CLI with --json prints exactly one JSON document while it logs on stderr', async () => {
  const p = await cli([
    'vectors',
    'prune',
    '--source',
    'vecs.bin',
    '--words-from',
    'train.tsv',
    '--out',
    'out3',
    '--json',
  ]);
  assert.equal(p.code, 0, p.stderr);
  assert.equal(p.stdout.trim().split('\n').length, 1);
  const rep = JSON.parse(p.stdout) as PruneResult;
  assert.equal(rep.found, 6);
  assert.match(p.stderr, /distinct words/);
  assert.match(p.stderr, /writing .*table\.ch8emb/);
  const l = await cli(['vectors', 'lookup', '--table', 'out3', '--json', 'movie', 'qqq']);
  assert.equal(l.code, 0, l.stderr);
  assert.deepEqual(JSON.parse(l.stdout), {
    tokens: [
      { token: 'movie', id: 2, vector: vectorOf('movie') },
      { token: 'qqq', id: null, vector: null },
    ],
  });
  const bad = await cli(['vectors', 'prune', '--source', 'garbled.txt', '--all', '--out', 'x', '--json']);
  assert.equal(bad.code, 2);
  assert.equal((JSON.parse(bad.stdout) as { ok: boolean }).ok, false);
});

test('--addr sends the same work to a running embedding service', async () => {
  const stack = await startStack({ CH8_DATA_ROOTS: dir, CH8_CACHE_DIR: join(dir, 'cache'), CH8_LOG_LEVEL: 'warn' }, [
    'embedding',
  ]);
  try {
    const addr = stack.services.embedding.address;
    const r = await run(vectorsPruneCommand, [
      '--addr',
      addr,
      '--source',
      'vecs.bin',
      '--words-from',
      'train.tsv',
      'dev.tsv',
      '--out',
      'out4',
    ]);
    const rep = r.result as PruneResult;
    const local = JSON.parse(
      JSON.stringify(
        (
          await run(vectorsPruneCommand, [
            '--source',
            'vecs.bin',
            '--words-from',
            'train.tsv',
            'dev.tsv',
            '--out',
            'out5',
          ])
        ).result,
      ),
    ) as PruneResult;
    assert.match(rep.table_id ?? '', /^[0-9a-f]{32}$/);
    for (const k of ['requested', 'found', 'missing', 'missing_sample', 'dim', 'vocab_size', 'vocab_hash'] as const)
      assert.deepEqual(rep[k], local[k], k);
    const [a, b] = await Promise.all([
      readTable(join(dir, 'out4', TABLE_FILE)),
      readTable(join(dir, 'out5', TABLE_FILE)),
    ]);
    assert.ok(
      Buffer.from(a.table.matrix.buffer, a.table.matrix.byteOffset, a.table.matrix.byteLength).equals(
        Buffer.from(b.table.matrix.buffer, b.table.matrix.byteOffset, b.table.matrix.byteLength),
      ),
    );
    const remote = await run(vectorsLookupCommand, ['--addr', addr, '--table-id', rep.table_id!, 'good', 'qqq']);
    const here = await run(vectorsLookupCommand, ['--table', 'out5', 'good', 'qqq']);
    assert.deepEqual(remote.result, here.result);
    // A path outside the service's data roots is refused.
    await assert.rejects(
      runCommand(vectorsPruneCommand, ['--addr', addr, '--source', '/etc/passwd', '--all'], { cwd: dir }),
      { name: 'GrpcError', message: /PERMISSION_DENIED/ },
    );
  } finally {
    await stack.stop();
  }
});
