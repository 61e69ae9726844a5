/**
 * `ch8 eval` (problem 74 for any exported model): scores a model version on a labelled TSV in the SST-2 layout
 * with the model's own vocabulary and training tokenizer: accuracy, precision, recall, F1 (positive = label 1),
 * the confusion matrix [[tn, fp], [fn, tp]], and how many examples were dropped as empty after removing OOV tokens.
 */
import { resolve } from 'node:path';
import { epochBatches } from '@ch8/batching/plan';
import { selectBackend } from '@ch8/backend/select';
import { prepareSplit } from '@ch8/datasets/prepare';
import { readSst2Tsv } from '@ch8/datasets/sst2';
import { Vocabulary } from '@ch8/embeddings/vocabulary';
import { InvalidInputError } from '@ch8/errors';
import { computeSplitMetrics, type SplitMetrics } from '@ch8/model-repository/manifest';
import { loadModel, resolveModelDir } from '@ch8/model-repository/repository';
import { getTokenizer, formatTokenizerSpec } from '@ch8/tokenizer';
import { str } from '../args.ts';
import type { Command } from '../command.ts';

export interface EvalReport extends SplitMetrics {
  model_dir: string;
  model_name: string;
  model_version: number;
  model: string;
  data: string;
  tokenizer: string;
  backend: string;
  /** The dev accuracy recorded when the model was trained (null if none). */
  trained_dev_accuracy: number | null;
}

export const evalCommand: Command = {
  name: 'eval',
  summary: 'score an exported model on a labelled TSV: accuracy, precision, recall, F1, confusion matrix',
  problems: [74],
  usage: 'ch8 eval --model-dir DIR --data TSV [--backend auto] [--json]',
  flags: {
    'model-dir': {
      type: 'string',
      help: 'a version folder of the model repository, or a model folder (its newest version)',
    },
    data: { type: 'string', help: 'labelled TSV in the SST-2 layout (header sentence<TAB>label)' },
    backend: {
      type: 'string',
      help: 'auto, tfjs-node-gpu, tfjs-node, webgpu, wasm or cpu (default $CH8_BACKEND or auto)',
    },
    json: { type: 'boolean', help: 'one JSON document on standard output' },
  },
  async run(args, io) {
    const dirFlag = str(args, 'model-dir');
    const dataFlag = str(args, 'data');
    if (dirFlag === undefined) throw new InvalidInputError('--model-dir is required', { field: 'model-dir' });
    if (dataFlag === undefined) throw new InvalidInputError('--data is required', { field: 'data' });
    const dir = await resolveModelDir(resolve(io.cwd, dirFlag));
    const data = resolve(io.cwd, dataFlag);
    const rows = await readSst2Tsv(data);
    const backend = await selectBackend({
      prefer: (str(args, 'backend') ?? io.env['CH8_BACKEND'] ?? 'auto') as 'auto',
      log: io.log,
    });
    const { model, manifest } = await loadModel(dir);
    try {
      const vocab = new Vocabulary(manifest.vocabulary.tokens, manifest.vocabulary.dim);
      const tokenize = getTokenizer(manifest.tokenizer.training);
      const { examples, stats } = prepareSplit(rows, { tokenize, idOf: (t) => vocab.idOf(t) });
      if (examples.length === 0) throw new InvalidInputError('no example has a token the model knows', { file: data });
      const r = await model.evaluateAsync([
        ...epochBatches(examples, { batchSize: 256, shuffle: false, bucketing: 'global' }),
      ]);
      const report: EvalReport = {
        ...computeSplitMetrics(r.confusion, r.loss, stats.droppedEmpty),
        model_dir: dir,
        model_name: manifest.name,
        model_version: manifest.version,
        model: manifest.model.kind,
        data,
        tokenizer: formatTokenizerSpec(manifest.tokenizer.training),
        backend: backend.backend,
        trained_dev_accuracy: manifest.metrics.devAccuracy,
      };
      io.result(report, (v: EvalReport) =>
        [
          `${v.model_name} version ${v.model_version} (${v.model}) on ${v.data}: ${v.examples} examples scored, ${v.dropped} dropped (no known token)`,
          `accuracy ${v.accuracy.toFixed(4)}  precision ${v.precision.toFixed(4)}  recall ${v.recall.toFixed(4)}  F1 ${v.f1.toFixed(4)}  loss ${v.loss.toFixed(4)}`,
          `confusion [[tn, fp], [fn, tp]] = ${JSON.stringify(v.confusion)}`,
        ].join('\n'),
      );
      return 0;
    } finally {
      model.dispose();
    }
  },
};
