/**
 * The Open Inference Protocol through a client generated in Python from the public protocol definition
 * (test-python/oip_client.py). Skips, saying why, where /usr/bin/python3 lacks grpcio or grpc_tools (Debian's
 * python3-grpcio and python3-grpc-tools: infra/scripts/python-grpc.sh installs them).
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { selectBackend } from '@ch8/backend/select';
import type { SentimentModel } from '@ch8/models/model';
import { exportVersion, scratchRoot, startGateway, tinyModel, TOKENS, type TestGateway } from './fixtures.ts';

const PYTHON = '/usr/bin/python3';
const PROTO_DIR = fileURLToPath(new URL('../../../proto', import.meta.url));
const SCRIPT = fileURLToPath(new URL('../test-python/oip_client.py', import.meta.url));

function missingPython(): string | undefined {
  const probe = spawnSync(PYTHON, ['-c', 'import grpc, grpc_tools.protoc'], { encoding: 'utf8' });
  if (probe.error !== undefined) return `${PYTHON} cannot be run (${probe.error.message})`;
  if (probe.status !== 0) {
    const why = probe.stderr.trim().split('\n').at(-1) ?? `exit ${probe.status}`;
    return `${PYTHON} lacks gRPC (${why}): install python3-grpcio and python3-grpc-tools (bash infra/scripts/python-grpc.sh, as root)`;
  }
  return undefined;
}

const skip = missingPython();
if (skip !== undefined) process.stderr.write(`python-client.test: SKIP: ${skip}\n`);

let repo: Awaited<ReturnType<typeof scratchRoot>>;
let gw: TestGateway;
let model: SentimentModel;

before(async () => {
  if (skip !== undefined) return;
  await selectBackend({ prefer: 'cpu' });
  repo = await scratchRoot();
  model = tinyModel('cnn', 4);
  await exportVersion(repo.root, 'sst2-cnn', model);
  await exportVersion(repo.root, 'sst2-cnn', model);
  gw = await startGateway(repo.root);
});
after(async () => {
  if (skip !== undefined) return;
  await gw.stop();
  model.dispose();
  await repo.remove();
});

function reference(tokens: string[]): number {
  const ids = Int32Array.from(tokens.map((t) => TOKENS.indexOf(t)));
  return model.predictProbabilities({ inputIds: ids, batchSize: 1, maxLength: ids.length })[0]!;
}

interface Tensor {
  datatype: string;
  shape: number[];
  values: (number | string)[];
}

test(
  'Python client generated from the public protocol: every v2 RPC, typed and raw inputs, errors',
  { skip },
  async () => {
    const { stdout } = await promisify(execFile)(PYTHON, [SCRIPT, PROTO_DIR, gw.address, 'sst2-cnn'], {
      timeout: 60_000,
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', PYTHONDONTWRITEBYTECODE: '1' },
    });
    const r = JSON.parse(stdout);
    assert.equal(r.live, true);
    assert.equal(r.ready, true);
    assert.equal(r.model_ready, true);
    assert.equal(r.unknown_model_ready, false);
    assert.deepEqual(r.server_metadata, { name: 'ch8-gateway', version: '0.1.0', extensions: [] });
    assert.deepEqual(r.model_metadata, {
      name: 'sst2-cnn',
      versions: ['2'],
      platform: 'ch8_tfjs',
      inputs: [{ name: 'TEXT', datatype: 'BYTES', shape: [-1] }],
      outputs: [
        { name: 'PROBABILITY', datatype: 'FP32', shape: [-1] },
        { name: 'LABEL', datatype: 'BYTES', shape: [-1] },
      ],
    });
    // Hand-written tokens of the texts the script sends; the last has none in the vocabulary.
    const probs = [reference(['i', 'loved', 'it', '!']), reference(['it', 'was', "n't", 'bad', '.']), 0.5];
    const labels = probs.map((p) => (p > 0.5 ? 'positive' : 'negative'));
    for (const kind of ['typed', 'raw'] as const) {
      assert.equal(r[kind].model_name, 'sst2-cnn');
      assert.equal(r[kind].model_version, '2');
      const p: Tensor = r[kind].outputs.PROBABILITY;
      assert.equal(p.datatype, 'FP32');
      assert.deepEqual(p.shape, [3]);
      p.values.forEach((v, i) =>
        assert.ok(Math.abs((v as number) - probs[i]!) < 1e-6, `${kind} ${i}: ${v} vs ${probs[i]}`),
      );
    }
    assert.deepEqual(r.typed.outputs.LABEL, { datatype: 'BYTES', shape: [3], values: labels });
    assert.equal(r.raw.outputs.LABEL, undefined, 'only the requested output');
    const e = r.errors as Record<string, string>;
    assert.match(e['wrong_datatype']!, /datatype must be BYTES, got "FP32"/);
    assert.match(e['wrong_shape']!, /shape must be \[N\].*\[2, 1\]/);
    assert.match(e['bad_prefix']!, /raw_input_contents\[0\].*length prefix 99 runs past the end/);
    assert.match(e['count_mismatch']!, /holds 2 elements, the shape says 3/);
    assert.match(e['blank_text']!, /\[1\].*white space only/);
    assert.match(e['unknown_model']!, /no-such-model/);
    assert.match(e['unknown_metadata']!, /no-such-model/);
    assert.equal(r.after_errors.PROBABILITY.values.length, 1);
    assert.ok(Math.abs(r.after_errors.PROBABILITY.values[0] - reference(['great', 'movie'])) < 1e-6);
  },
);
