import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CommandIO } from './command.ts';
import { createProgress, epochLine, stepLine } from './progress.ts';

const step = {
  epoch: 2,
  epochs: 5,
  step: 30,
  stepsInEpoch: 120,
  loss: 0.41234,
  accuracy: 0.8,
  examplesPerSecond: 1234.4,
  elapsed: 10,
};

test('the live line: epoch, a bar of the epoch, live loss, examples/s and the ETA of the epoch', () => {
  const line = stepLine(step, 120);
  // A quarter of the epoch in 10 s: 30 s to go.
  assert.match(line, /^epoch 2\/5 \[#+\.+\] step 30\/120 loss 0\.4123 acc 0\.800 1234 ex\/s ETA 0:30$/);
  const bar = /\[(#*)(\.*)\]/.exec(line)!;
  assert.equal(bar[1]!.length / (bar[1]!.length + bar[2]!.length), 0.25);
  assert.ok(stepLine(step, 60).length <= 59, 'fits a narrow terminal');
  assert.match(stepLine({ ...step, step: 0 }, 120), /ETA --:--/);
  assert.match(stepLine({ ...step, elapsed: 3600 }, 120), /ETA 3:00:00/);
});

test('on a terminal the step line is redrawn in place and cleared before other lines; elsewhere plain log lines', () => {
  const written: string[] = [];
  const logs: string[] = [];
  const io = {
    json: false,
    cwd: '/',
    env: {},
    log: (l: string) => void logs.push(l),
    result: () => {},
  } satisfies CommandIO;
  const tty = createProgress({ ...io, terminal: { write: (t) => void written.push(t), columns: () => 100 } });
  tty.step(step);
  tty.step({ ...step, step: 60 });
  tty.epoch({ epoch: 2, trainLoss: 0.4, trainAccuracy: 0.8, devLoss: 0.5, devAccuracy: 0.75, examplesPerSecond: 1000 });
  tty.done();
  assert.equal(written.length, 3);
  assert.ok(written[0]!.startsWith('\r\x1b[2Kepoch 2/5 ['));
  assert.ok(written[2]!.startsWith('\r\x1b[2Kepoch 2: train loss 0.4000'), JSON.stringify(written[2]));
  assert.equal(logs.length, 0);

  const plain = createProgress(io);
  plain.step(step);
  plain.epoch({ epoch: 2, trainLoss: 0.4, trainAccuracy: 0.8, examplesPerSecond: 1000 });
  assert.deepEqual(logs, [
    'epoch 2 step 30/120: loss 0.4123 (1234 ex/s)',
    'epoch 2: train loss 0.4000, acc 0.8000 (1000 ex/s)',
  ]);
  assert.equal(
    epochLine({ epoch: 1, trainLoss: 1, trainAccuracy: 0.5, devLoss: 0.25, devAccuracy: 1, examplesPerSecond: 9.6 }),
    'epoch 1: train loss 1.0000, acc 0.5000; dev loss 0.2500, acc 1.0000 (10 ex/s)',
  );
});
