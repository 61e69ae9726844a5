/**
 * The trainer as a real child process (`node --import tsx src/main.ts`): SIGKILLed after a run's first checkpoint,
 * started again, the run resumes from the checkpoint (re-preparing its data set on a dataset service that forgot
 * it) and ends with exactly the metrics of an uninterrupted run of the same config. SIGTERM stops a run after its
 * current step, leaves it RUNNING (resumable) and exits 0.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { RunState, TrainerService, type Run } from '@ch8/contracts/trainer';
import { createClient, type Client } from '@ch8/service-kit/client';
import { Code, GrpcError } from '@ch8/service-kit/status';
import { quickConfig, startDeps, tempDir, trainerEnv, waitForEnd, watchAll, type Deps } from './test-stack.ts';

const PACKAGE = dirname(dirname(fileURLToPath(import.meta.url)));

interface Child {
  process: ChildProcess;
  client: Client<typeof TrainerService>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

let deps: Deps;
let dir: string;
/** The restarted trainer of the first test, reused by the second. */
let restarted: Child | undefined;

before(async () => {
  deps = await startDeps({ trainRows: 1500, devRows: 150 });
  dir = await tempDir('ch8-trainer-resume-');
});
after(async () => {
  if (restarted?.process.exitCode === null) {
    restarted.process.kill('SIGKILL');
    await restarted.exited;
  }
  await deps.stop();
});

/** Starts the trainer's main.ts; resolves once it logged that it is ready. */
async function startChild(extra: Record<string, string> = {}): Promise<Child> {
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    ...trainerEnv(deps, dir, { CH8_LOG_LEVEL: 'info', ...extra }),
  };
  delete env['NODE_TEST_CONTEXT'];
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: PACKAGE,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const lines: string[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    let listening: number | undefined;
    createInterface({ input: child.stderr! }).on('line', (line) => {
      lines.push(line);
      try {
        const record = JSON.parse(line) as { msg?: string; port?: number };
        if (record.msg === 'listening') listening = record.port;
        if (record.msg === 'trainer ready' && listening !== undefined) resolve(listening);
      } catch {
        // tfjs prints a plain-text banner from the run workers.
      }
    });
    void exited.then(({ code, signal }) =>
      reject(new Error(`the trainer exited (${code ?? signal}) before it was ready:\n${lines.join('\n')}`)),
    );
  });
  return { process: child, client: createClient(TrainerService, `127.0.0.1:${port}`), exited };
}

function runDir(runId: string): string {
  return join(dir, 'state', 'runs', runId);
}

function storedRun(runId: string): { state: string } {
  return JSON.parse(readFileSync(join(runDir(runId), 'run.json'), 'utf8')) as { state: string };
}

async function until(check: () => boolean, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 15));
  }
}

/** What must be equal between a resumed and an uninterrupted run (not timings). */
function outcome(run: Run) {
  return {
    state: RunState[run.state],
    bestEpoch: run.bestEpoch,
    bestDevAccuracy: run.bestDevAccuracy,
    epochs: run.epochs.map((e) => [e.epoch, e.trainLoss, e.trainAccuracy, e.devLoss, e.devAccuracy, e.learningRate]),
    finalMetrics: run.finalMetrics.map((m) => [
      m.split,
      m.examples,
      m.loss,
      m.accuracy,
      m.precision,
      m.recall,
      m.f1,
      m.tn,
      m.fp,
      m.fn,
      m.tp,
    ]),
  };
}

test('SIGKILL after the first checkpoint, start again: the run resumes and ends exactly as an uninterrupted run', async () => {
  const config = quickConfig({ epochs: 4, exportName: 'resumed' });
  const a = await startChild();
  const runId = (await a.client.startRun({ config })).run!.runId;
  const checkpoints = join(runDir(runId), 'checkpoints');
  await until(
    () => existsSync(checkpoints) && readdirSync(checkpoints).some((f) => /^epoch-\d+\.ckpt$/.test(f)),
    'the first checkpoint',
  );
  a.process.kill('SIGKILL');
  a.client.close();
  assert.equal((await a.exited).signal, 'SIGKILL');
  assert.equal(storedRun(runId).state, 'RUN_STATE_RUNNING', 'killed before the run ended');

  // The dataset service restarts too and forgets the data set: the resumed run prepares it again from its source.
  await deps.stopDataset();
  await deps.startDataset();

  // Two runs at once: the resumed one and an uninterrupted reference of the same config, started from scratch.
  const b = await startChild({ CH8_MAX_CONCURRENT_RUNS: '2' });
  restarted = b;
  // The reference starts once the resumed run has its data (so the resumed run prepared the data set itself).
  for await (const e of b.client.watchRun({ runId }))
    if (e.event.case === 'message' && /resumed after epoch/.test(e.event.value)) break;
  const referenceId = (await b.client.startRun({ config })).run!.runId;
  const [resumed, reference] = await Promise.all([waitForEnd(b.client, runId), waitForEnd(b.client, referenceId)]);
  assert.equal(resumed.state, RunState.SUCCEEDED, resumed.error);
  assert.ok(
    resumed.resumedFromEpoch >= 1 && resumed.resumedFromEpoch < 4,
    `resumed from epoch ${resumed.resumedFromEpoch}`,
  );
  const messages = (await watchAll(b.client, runId)).flatMap((e) =>
    e.event.case === 'message' ? [e.event.value] : [],
  );
  assert.ok(
    messages.some((m) => /trainer restarted/.test(m)),
    messages.join('\n'),
  );
  assert.ok(
    messages.some((m) => /resumed after epoch/.test(m)),
    messages.join('\n'),
  );
  assert.ok(
    messages.some((m) => /preparing the data set/.test(m)),
    messages.join('\n'),
  );

  assert.equal(reference.state, RunState.SUCCEEDED, reference.error);
  assert.equal(reference.resumedFromEpoch, 0);
  assert.deepEqual(outcome(resumed), outcome(reference));
  assert.deepEqual([resumed.exported?.version, reference.exported?.version].sort(), [1, 2]);
});

test('SIGTERM stops a run after its current step, leaves it RUNNING and resumable, and exits 0', async () => {
  const c = restarted ?? (await startChild());
  const runId = (await c.client.startRun({ config: quickConfig({ epochs: 1000, exportName: 'interrupted' }) })).run!
    .runId;
  const watcher = watchAll(c.client, runId).then(
    () => 'ended',
    (e: unknown) => e,
  );
  await until(
    () =>
      existsSync(join(runDir(runId), 'events.jsonl')) &&
      readFileSync(join(runDir(runId), 'events.jsonl'), 'utf8').includes('"step"'),
    'a step',
  );
  c.process.kill('SIGTERM');
  const { code } = await c.exited;
  c.client.close();
  assert.equal(code, 0);
  const end = await watcher;
  assert.ok(end instanceof GrpcError && end.code === Code.UNAVAILABLE, `the watch stream ended with ${String(end)}`);
  assert.equal(storedRun(runId).state, 'RUN_STATE_RUNNING');
  assert.match(readFileSync(join(runDir(runId), 'events.jsonl'), 'utf8'), /interrupted: the trainer is shutting down/);
});
