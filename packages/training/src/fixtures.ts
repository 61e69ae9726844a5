/**
 * Test fixtures: a small generated data set whose right answer is known (label 1 when positive words outnumber
 * negative ones), and the interrupt-and-resume pattern the checkpoint tests share.
 */
import assert from 'node:assert/strict';
import { basename, join } from 'node:path';
import type { Example } from '@ch8/datasets/prepare';
import { CancelledError } from '@ch8/errors';
import { uniform01 } from '@ch8/random';
import { vocabularyHash } from '@ch8/embeddings/vocabulary';
import { directoryCheckpointStore } from './checkpoints.ts';
import type { TrainingConfig } from './config.ts';
import { localFeed, type PreparedData } from './feed.ts';
import { train, type TrainResult } from './run.ts';

export const DIM = 8;

export function toyData(options: { seed?: number; train?: number; dev?: number } = {}): PreparedData {
  const rnd = uniform01(options.seed ?? 3);
  const words = ['pos', 'neg', 'neu'].flatMap((k) => Array.from({ length: 10 }, (_, i) => `${k}${i}`));
  const tokens = ['<pad>', ...words];
  const matrix = new Float32Array(tokens.length * DIM);
  tokens.forEach((t, id) => {
    if (id === 0) return;
    const sign = t.startsWith('pos') ? 1 : t.startsWith('neg') ? -1 : 0;
    for (let j = 0; j < DIM; j++) matrix[id * DIM + j] = (j === 0 ? sign : 0) + (rnd() - 0.5) * 0.6;
  });
  const split = (n: number): { examples: Example[]; stats: { rows: number; kept: number; droppedEmpty: number } } => {
    const examples: Example[] = [];
    for (let i = 0; i < n; i++) {
      const len = 2 + Math.floor(rnd() * 9);
      const ids = new Int32Array(len);
      let score = 0;
      for (let k = 0; k < len; k++) {
        ids[k] = 1 + Math.floor(rnd() * words.length);
        const w = tokens[ids[k]!]!;
        score += w.startsWith('pos') ? 1 : w.startsWith('neg') ? -1 : 0;
      }
      if (score === 0) ids[0] = 1 + Math.floor(rnd() * 20); // a pos or neg word breaks the tie most of the time
      let s = 0;
      for (const id of ids) s += tokens[id]!.startsWith('pos') ? 1 : tokens[id]!.startsWith('neg') ? -1 : 0;
      examples.push({
        text: Array.from(ids, (id) => tokens[id]).join(' '),
        label: s > 0 ? 1 : 0,
        inputIds: ids,
        index: i,
      });
    }
    return { examples, stats: { rows: n, kept: n, droppedEmpty: 0 } };
  };
  const train = split(options.train ?? 320);
  const dev = split(options.dev ?? 80);
  return {
    description: 'toy',
    tokenizer: { kind: 'chapter', version: 1 },
    vectors: 'generated',
    tokens,
    vocabHash: vocabularyHash(tokens, DIM),
    dim: DIM,
    matrix,
    splits: [
      { name: 'train', ...train },
      { name: 'dev', ...dev },
    ],
  };
}

/**
 * Trains `config` on {@link toyData} whole (checkpoints in `<dir>/whole`), then again cancelled after epoch `cutAfter`
 * (checkpoints in `<dir>/cut`; the cancellation is asserted), then resumed from the cut run's checkpoints. The
 * caller compares `resumed` with `whole`; `cutFiles` names the checkpoint files the cut run left (newest first);
 * `store` is that checkpoint store, as the resumed run left it.
 */
export async function interruptAndResume(
  config: TrainingConfig,
  dir: string,
  cutAfter = 2,
): Promise<{
  whole: TrainResult;
  resumed: TrainResult;
  cutFiles: string[];
  store: ReturnType<typeof directoryCheckpointStore>;
}> {
  const whole = await train(config, localFeed(toyData()), {
    checkpoints: directoryCheckpointStore(join(dir, 'whole')),
  });
  const store = directoryCheckpointStore(join(dir, 'cut'));
  const abort = new AbortController();
  await assert.rejects(
    train(config, localFeed(toyData()), {
      checkpoints: store,
      signal: abort.signal,
      events: { onEpoch: (e) => e.epoch === cutAfter && abort.abort() },
    }),
    CancelledError,
  );
  const cutFiles = (await store.files()).map((f) => basename(f));
  const resumed = await train(config, localFeed(toyData()), { checkpoints: store });
  assert.equal(resumed.resumedFromEpoch, cutAfter);
  return { whole, resumed, cutFiles, store };
}
