import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidInputError } from '@ch8/errors';
import { generateResults } from './fixture.ts';
import { validateChapterResults } from './validate.ts';

/** A JSON round trip of generated results, as read from results.json. */
function fresh(): Record<string, unknown> & { models: Record<string, unknown>[] } {
  return JSON.parse(JSON.stringify(generateResults({ models: 3, epochs: 4 })));
}

function rejects(value: unknown, field: string, message?: RegExp): void {
  assert.throws(
    () => validateChapterResults(value, 'results.json'),
    (e: unknown) => {
      assert.ok(e instanceof InvalidInputError, `expected InvalidInputError, got ${String(e)}`);
      assert.equal(e.field, field);
      assert.equal(e.file, 'results.json');
      assert.ok(e.message.includes(`field ${field}`), e.message);
      if (message !== undefined) assert.match(e.message, message);
      return true;
    },
  );
}

test('valid results come back equal, as a fresh copy', () => {
  const input = fresh();
  const out = validateChapterResults(input);
  assert.deepEqual(out, input);
  assert.notEqual(out, input);
  assert.notEqual(out.models[0], input.models[0]);
  assert.deepEqual(validateChapterResults({ models: [] }), { models: [] });
});

test('unknown fields are dropped; null optional fields read as absent', () => {
  const input = fresh() as Record<string, unknown> & { models: Record<string, unknown>[] };
  input.extra = 1;
  input.data = null;
  const m = input.models[0]!;
  m.future_field = 'x';
  (m.epochs as Record<string, unknown>[])[1]!.dev_loss = null; // JSON.stringify(NaN)
  delete m.splits;
  const out = validateChapterResults(input);
  assert.equal('extra' in out, false);
  assert.equal('data' in out, false);
  assert.equal('future_field' in out.models[0]!, false);
  assert.equal('dev_loss' in out.models[0]!.epochs[1]!, false);
  assert.equal(out.models[0]!.epochs[0]!.dev_loss, (m.epochs as { dev_loss: number }[])[0]!.dev_loss);
  assert.equal(out.models[0]!.splits, undefined);
});

test('each kind of bad value names its field', () => {
  rejects(null, '(results)', /expected an object, got null/);
  rejects([], '(results)', /got an array/);
  rejects({}, 'models', /expected an array/);

  let v = fresh();
  (v.models[2]!.epochs as Record<string, unknown>[])[0]!.train_loss = 'high';
  rejects(v, 'models[2].epochs[0].train_loss', /expected a number, got the string "high"/);

  v = fresh();
  (v.models[1]!.epochs as Record<string, unknown>[])[3]!.train_loss = null;
  rejects(v, 'models[1].epochs[3].train_loss', /got null/);

  v = fresh();
  delete v.models[0]!.finetune;
  rejects(v, 'models[0].finetune', /expected true or false, got nothing \(missing\)/);

  v = fresh();
  v.models[0]!.name = 7;
  rejects(v, 'models[0].name', /expected a string/);

  v = fresh();
  v.models[1]!.dev_accuracy = 1.5;
  rejects(v, 'models[1].dev_accuracy', /at most 1/);

  v = fresh();
  (v.models[0]!.epochs as Record<string, unknown>[])[0]!.epoch = 0;
  rejects(v, 'models[0].epochs[0].epoch', /at least 1/);

  v = fresh();
  v.models[0]!.best_epoch = 1.5;
  rejects(v, 'models[0].best_epoch', /whole number/);

  v = fresh();
  v.models[2]!.epochs = {};
  rejects(v, 'models[2].epochs', /expected an array, got an object/);

  v = fresh();
  (v.models as unknown[])[1] = 'model';
  rejects(v, 'models[1]', /expected an object/);
});

test('splits and samples are checked to the cell', () => {
  let v = fresh();
  (v.models[1]!.splits as { confusion: number[][] }[])[0]!.confusion[1]![0] = -1;
  rejects(v, 'models[1].splits[0].confusion[1][0]', /at least 0/);

  v = fresh();
  (v.models[0]!.splits as { confusion: number[][] }[])[0]!.confusion = [[1, 2]];
  rejects(v, 'models[0].splits[0].confusion', /2 rows/);

  v = fresh();
  (v.models[0]!.splits as { confusion: number[][] }[])[0]!.confusion[0] = [1, 2, 3];
  rejects(v, 'models[0].splits[0].confusion[0]', /2 columns/);

  v = fresh();
  (v.models[0]!.splits as Record<string, unknown>[])[0]!.examples = 3.5;
  rejects(v, 'models[0].splits[0].examples', /whole number/);

  v = fresh();
  (v.samples as Record<string, unknown>[])[1]!.probability = 2;
  rejects(v, 'samples[1].probability', /at most 1/);

  v = fresh();
  v.seconds = -1;
  rejects(v, 'seconds', /at least 0/);
});
