/**
 * Runs in real worker threads against the real embedding and dataset services, on a data set whose right answer is
 * known (test-stack.ts): end to end with two watchers, cancel, and an export that fails.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { selectBackend } from '@ch8/backend/select';
import { RunState, type WatchRunResponse } from '@ch8/contracts/trainer';
import { listVersions, loadModel } from '@ch8/model-repository/repository';
import {
  NEGATIVE,
  POSITIVE,
  quickConfig,
  sentimentRows,
  startDeps,
  startTrainer,
  states,
  tempDir,
  waitForEnd,
  watchAll,
  type Deps,
  type Trainer,
} from './test-stack.ts';

const TRAIN_ROWS = 600;
const DEV_ROWS = 150;
let deps: Deps;
let trainer: Trainer;

before(async () => {
  deps = await startDeps({ trainRows: TRAIN_ROWS, devRows: DEV_ROWS });
  trainer = await startTrainer(deps, await tempDir('ch8-trainer-run-'));
});
after(async () => {
  await trainer.stop();
  await deps.stop();
});

/** Checks the order of a run's events: states, steps within and across epochs, epoch ends, export, final state. */
function checkOrder(events: readonly WatchRunResponse[], epochs: number): void {
  assert.deepEqual(states(events), [RunState.PENDING, RunState.RUNNING, RunState.SUCCEEDED]);
  let epoch = 1;
  let step = 0;
  const ends: number[] = [];
  let exportedAt = -1;
  events.forEach((e, i) => {
    if (e.event.case === 'step') {
      assert.equal(e.event.value.epoch, epoch, `step event ${i} belongs to the current epoch`);
      assert.ok(e.event.value.step > step, `steps increase (event ${i})`);
      assert.ok(e.event.value.step <= e.event.value.stepsInEpoch);
      step = e.event.value.step;
    } else if (e.event.case === 'epochEnd') {
      assert.equal(e.event.value.epoch, epoch);
      ends.push(epoch);
      epoch++;
      step = 0;
    } else if (e.event.case === 'exported') {
      exportedAt = i;
    }
  });
  assert.deepEqual(
    ends,
    Array.from({ length: epochs }, (_, i) => i + 1),
  );
  assert.equal(exportedAt, events.length - 2, 'exported comes right before the final state');
  const times = events.map((e) => Number(e.time!.seconds) * 1e9 + e.time!.nanos);
  assert.deepEqual(
    times,
    [...times].sort((a, b) => a - b),
    'event times never go back',
  );
}

test('a run end to end: SUCCEEDED, well above chance, two watchers see the same ordered events, the export loads', async () => {
  const epochs = 3;
  const { run: started } = await trainer.client.startRun({
    config: quickConfig({ epochs, exportName: 'known-answer' }),
  });
  const runId = started!.runId;
  assert.equal(started!.state, RunState.PENDING);
  const first: WatchRunResponse[] = [];
  let secondStarted: Promise<WatchRunResponse[]> | undefined;
  for await (const e of trainer.client.watchRun({ runId })) {
    first.push(e);
    // The second watcher joins mid-run, after the first epoch: it gets the past replayed, then the rest live.
    if (e.event.case === 'epochEnd' && secondStarted === undefined) secondStarted = watchAll(trainer.client, runId);
  }
  assert.ok(secondStarted, 'an epoch ended');
  const second = await secondStarted;
  checkOrder(first, epochs);
  assert.deepEqual(second, first);
  assert.deepEqual(
    await watchAll(trainer.client, runId),
    first,
    'a watcher of the finished run gets the whole history',
  );

  const run = (await trainer.client.getRun({ runId })).run!;
  assert.equal(run.state, RunState.SUCCEEDED);
  assert.equal(run.backend, 'cpu');
  assert.notEqual(run.device, '');
  assert.equal(run.epochs.length, epochs);
  assert.equal(run.errorCode, '');
  const bestDev = Math.max(...run.epochs.map((e) => e.devAccuracy));
  assert.equal(run.bestDevAccuracy, bestDev);
  assert.equal(run.epochs[run.bestEpoch - 1]!.devAccuracy, bestDev);
  assert.ok(run.bestDevAccuracy > 0.85, `dev accuracy ${run.bestDevAccuracy} (chance is about 0.5)`);
  assert.ok(run.dataWaitShare >= 0 && run.dataWaitShare <= 1);
  assert.ok(run.startedAt && run.finishedAt && run.createdAt);
  assert.deepEqual(
    run.finalMetrics.map((m) => m.split),
    ['train', 'dev'],
  );
  const dev = run.finalMetrics[1]!;
  assert.equal(dev.accuracy, bestDev, 'the final dev score is the best epoch');
  assert.equal(dev.tn + dev.fp + dev.fn + dev.tp, dev.examples);

  // The exported version: in the repository, tagged with the run, and its weights score the dev rows (tokenized
  // here, independently of the dataset service) exactly as the run reported.
  assert.deepEqual(run.exported && [run.exported.name, run.exported.version], ['known-answer', 1]);
  assert.equal(run.exported!.path, join(trainer.config.modelRepository, 'known-answer', '1'));
  assert.deepEqual(await listVersions(trainer.config.modelRepository, 'known-answer'), [1]);
  await selectBackend({ prefer: 'cpu' });
  const { model, manifest } = await loadModel(run.exported!.path);
  try {
    assert.equal(manifest.runId, runId);
    assert.equal(manifest.metrics.bestEpoch, run.bestEpoch);
    const ids = new Map(manifest.vocabulary.tokens.map((t, i) => [t, i]));
    let examples = 0;
    let correct = 0;
    for (const row of sentimentRows(DEV_ROWS, 2)) {
      const [text, label] = row.split('\t') as [string, string];
      const known = text.split(' ').flatMap((w) => (ids.has(w) ? [ids.get(w)!] : []));
      if (known.length === 0) continue;
      const [p] = model.predictProbabilities({
        inputIds: Int32Array.from(known),
        batchSize: 1,
        maxLength: known.length,
      });
      examples++;
      if ((p! > 0.5 ? 1 : 0) === Number(label)) correct++;
    }
    assert.equal(BigInt(examples), dev.examples);
    assert.ok(Math.abs(correct / examples - dev.accuracy) < 1e-9, `${correct}/${examples} vs ${dev.accuracy}`);
    // And the known answer on hand-made sentences.
    const p = (words: string[]) =>
      model.predictProbabilities({
        inputIds: Int32Array.from(words, (w) => ids.get(w)!),
        batchSize: 1,
        maxLength: words.length,
      })[0]!;
    assert.ok(p([POSITIVE[0]!, POSITIVE[3]!, NEGATIVE[1]!]) > 0.5);
    assert.ok(p([NEGATIVE[0]!, NEGATIVE[5]!, POSITIVE[2]!]) < 0.5);
  } finally {
    model.dispose();
  }
  assert.ok(
    !existsSync(join(trainer.config.stateDir, 'runs', runId, 'checkpoints')),
    'checkpoints are removed when a run ends',
  );
});

test('cancel: a running run stops within a batch, ends CANCELLED and exports nothing', async () => {
  const { run } = await trainer.client.startRun({ config: quickConfig({ epochs: 500, exportName: 'cancelled' }) });
  const runId = run!.runId;
  const seen: WatchRunResponse[] = [];
  for await (const e of trainer.client.watchRun({ runId })) {
    seen.push(e);
    if (e.event.case === 'step' && e.event.value.step === 5) break;
  }
  const cancelled = (await trainer.client.cancelRun({ runId })).run!;
  assert.equal(cancelled.state, RunState.CANCELLED);
  assert.ok(cancelled.epochs.length < 500);
  const events = await watchAll(trainer.client, runId);
  assert.deepEqual(states(events), [RunState.PENDING, RunState.RUNNING, RunState.CANCELLED]);
  assert.ok(!events.some((e) => e.event.case === 'exported'));
  assert.deepEqual(await listVersions(trainer.config.modelRepository, 'cancelled'), []);
  await assert.rejects(trainer.client.cancelRun({ runId }), /FAILED_PRECONDITION/);
});

test('an export that fails (write error injected in the worker) ends FAILED and leaves no version behind', async () => {
  const t = await startTrainer(deps, await tempDir('ch8-trainer-fault-'), {
    deps: { faults: { export: 'after-write' } },
  });
  try {
    const { run } = await t.client.startRun({ config: quickConfig({ epochs: 1, exportName: 'faulty' }) });
    const ended = await waitForEnd(t.client, run!.runId);
    assert.equal(ended.state, RunState.FAILED);
    assert.equal(ended.errorCode, 'INTERNAL');
    assert.match(ended.error, /export/);
    assert.equal(ended.epochs.length, 1, 'training itself completed');
    assert.equal(ended.exported, undefined);
    assert.deepEqual(await listVersions(t.config.modelRepository, 'faulty'), []);
    const modelDir = join(t.config.modelRepository, 'faulty');
    assert.deepEqual(existsSync(modelDir) ? readdirSync(modelDir) : [], [], 'no temporary directory is left either');
  } finally {
    await t.stop();
  }
});

test('workers 2: the run trains data-parallel in its worker (one more thread), recorded in the run and the export', async () => {
  const { run } = await trainer.client.startRun({
    config: quickConfig({
      model: 'bow-finetune',
      epochs: 1,
      maxBatchesPerEpoch: 10,
      workers: 2,
      exportName: 'two-workers',
    }),
  });
  assert.equal(run!.config!.workers, 2);
  const events = await watchAll(trainer.client, run!.runId);
  assert.deepEqual(states(events), [RunState.PENDING, RunState.RUNNING, RunState.SUCCEEDED]);
  assert.ok(
    events.some((e) => e.event.case === 'message' && /data-parallel: 2 replicas/.test(e.event.value)),
    'the run says it trains with 2 replicas',
  );
  const ended = (await trainer.client.getRun({ runId: run!.runId })).run!;
  assert.equal(ended.config!.workers, 2);
  assert.equal(ended.epochs.length, 1);
  const { model, manifest } = await loadModel(ended.exported!.path);
  model.dispose();
  assert.equal(manifest.training['workers'], 2);
});
