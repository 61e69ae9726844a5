import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { readManifest } from '@ch8/model-repository/repository';
import { demoCommand } from './commands/demo.ts';
import { ROOT } from './launch.ts';
import { runCommand } from './testing.ts';

let dir: string;
before(async () => void (dir = await mkdtemp(join(tmpdir(), 'ch8-cli-demo-'))));
after(() => rm(dir, { recursive: true, force: true }));

test('demo: the four services come up SERVING, a model is trained on the builtin data and exported', async () => {
  const models = join(dir, 'models');
  const r = await runCommand(demoCommand, ['--json', '--models', models], {
    cwd: ROOT,
    env: { CH8_CACHE_DIR: join(dir, 'cache') },
  });
  const result = r.value as {
    ok: boolean;
    services: Array<{ service: string; status: string }>;
    training: { model: string; epochs: number; dev_accuracy: number; model_dir: string };
  };
  assert.equal(r.code, 0, r.logs.join('\n'));
  assert.equal(result.ok, true);
  assert.deepEqual(
    result.services.map((s) => [s.service, s.status]),
    [
      ['embedding', 'SERVING'],
      ['dataset', 'SERVING'],
      ['trainer', 'SERVING'],
      ['gateway', 'SERVING'],
    ],
  );
  assert.equal(result.training.model, 'bow-frozen');
  assert.equal(result.training.epochs, 3);
  // 299 dev sentences of the review sets: chance is 0.5, three epochs of bow-frozen reach about 0.75.
  assert.ok(result.training.dev_accuracy > 0.65, `dev accuracy ${result.training.dev_accuracy}`);
  assert.equal(result.training.model_dir, join(models, 'bow-frozen', '1'));
  assert.equal((await readManifest(result.training.model_dir)).model.kind, 'bow-frozen');
});

test('demo: an unknown model is refused before the stack starts', async () => {
  await assert.rejects(
    runCommand(demoCommand, ['--model', 'gpt'], { cwd: ROOT }),
    (e: Error) => e.name === 'InvalidInputError' && /--model must be one of/.test(e.message),
  );
});
