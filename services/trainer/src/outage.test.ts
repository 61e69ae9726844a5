/**
 * A dependency dies mid-run: the run ends FAILED with error_code UNAVAILABLE and exports nothing, the trainer keeps
 * serving, and once the dataset service is back (having forgotten every data set) a new run prepares the data again
 * and succeeds.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { RunState } from '@ch8/contracts/trainer';
import { listVersions } from '@ch8/model-repository/repository';
import { Code, GrpcError } from '@ch8/service-kit/status';
import { quickConfig, startDeps, startTrainer, tempDir, waitForEnd, type Deps, type Trainer } from './test-stack.ts';

let deps: Deps;
let trainer: Trainer;

before(async () => {
  deps = await startDeps({ trainRows: 400, devRows: 100 });
  trainer = await startTrainer(deps, await tempDir('ch8-trainer-outage-'));
});
after(async () => {
  await trainer.stop();
  await deps.stop();
});

test('the dataset service stopped mid-run: FAILED with UNAVAILABLE, nothing exported; after it is back a new run succeeds', async () => {
  const { run } = await trainer.client.startRun({ config: quickConfig({ epochs: 200, exportName: 'outage' }) });
  const runId = run!.runId;
  const datasetId = run!.datasetId;
  for await (const e of trainer.client.watchRun({ runId })) if (e.event.case === 'epochEnd') break;
  await deps.stopDataset();

  const failed = await waitForEnd(trainer.client, runId);
  assert.equal(failed.state, RunState.FAILED, failed.error);
  assert.equal(failed.errorCode, 'UNAVAILABLE', failed.error);
  assert.match(failed.error, /dataset service/);
  assert.ok(failed.epochs.length >= 1 && failed.epochs.length < 200);
  assert.equal(failed.exported, undefined);
  assert.deepEqual(await listVersions(trainer.config.modelRepository, 'outage'), []);

  // Still serving; StartRun says why it cannot start a run now.
  assert.equal((await trainer.client.listRuns({})).runs.length, 1);
  await assert.rejects(
    trainer.client.startRun({ config: quickConfig() }),
    (e: unknown) => e instanceof GrpcError && e.code === Code.UNAVAILABLE,
  );

  await deps.startDataset();
  await deps.dataset.waitForReady(10_000);
  await assert.rejects(
    deps.dataset.getDataset({ datasetId }),
    (e: unknown) => e instanceof GrpcError && e.code === Code.NOT_FOUND,
    'the new dataset service forgot the data set',
  );
  // The trainer's client reconnects within its bounded backoff (at most a few seconds).
  let again;
  for (const until = Date.now() + 10_000; again === undefined; ) {
    try {
      again = (await trainer.client.startRun({ config: quickConfig({ epochs: 1, exportName: 'outage' }) })).run!;
    } catch (e) {
      if (!(e instanceof GrpcError && e.code === Code.UNAVAILABLE) || Date.now() > until) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  assert.equal(again.datasetId, datasetId, 'the same source prepares to the same data set');
  const ok = await waitForEnd(trainer.client, again.runId);
  assert.equal(ok.state, RunState.SUCCEEDED, ok.error);
  assert.deepEqual(await listVersions(trainer.config.modelRepository, 'outage'), [1]);
});
