/**
 * One model version loaded for serving: the model on the compute backend, its raw-text tokenizer and vocabulary,
 * and its batcher. Requests hold a lease while they use it; an unloaded version drains its leases first.
 */
import { collate } from '@ch8/batching/collate';
import type { ModelManifest } from '@ch8/model-repository/manifest';
import { loadModel } from '@ch8/model-repository/repository';
import type { SentimentModel } from '@ch8/models/model';
import { FailedPreconditionError } from '@ch8/errors';
import { formatTokenizerSpec, tokenizerForRawText, type Tokenize } from '@ch8/tokenizer';
import { Batcher, type BatchObserver, type EnqueueOptions } from './batcher.ts';
import { BowScorer } from './bow-scorer.ts';
import { encodeText, type EncodedText } from './text.ts';

/** The answer for a text with no token in the vocabulary (documented in the README and gateway.proto). */
export const NO_KNOWN_TOKEN_PROBABILITY = 0.5;

export interface TextPrediction extends EncodedText {
  /** P(positive). */
  probability: number;
  /** 1 when probability > 0.5 (the manifest's rule), else 0. */
  labelId: 0 | 1;
  label: string;
  noKnownToken: boolean;
}

export interface BatchingOptions {
  maxBatch: number;
  maxDelayMs: number;
  maxQueue: number;
}

export class LoadedVersion {
  readonly name: string;
  readonly version: number;
  readonly manifest: ModelManifest;
  readonly tokenizer: string;
  readonly #model: SentimentModel;
  readonly #tokenize: Tokenize;
  readonly #ids: Map<string, number>;
  readonly #batcher: Batcher<Int32Array, number>;
  /** The plain-JS scorer of a bag-of-words version, once warm-up found it equal to the tfjs forward pass. */
  #scorer: BowScorer | undefined;
  /** Largest difference between the scorer and the tfjs forward pass at warm-up (NaN: not compared). */
  #scorerDifference = NaN;
  #leases = 0;
  #draining = false;
  #drained: (() => void) | undefined;
  #disposed = false;

  private constructor(
    model: SentimentModel,
    manifest: ModelManifest,
    tokenize: Tokenize,
    batching: BatchingOptions,
    observer: BatchObserver,
  ) {
    this.name = manifest.name;
    this.version = manifest.version;
    this.manifest = manifest;
    this.tokenizer = formatTokenizerSpec(manifest.tokenizer.raw);
    this.#model = model;
    this.#tokenize = tokenize;
    this.#ids = new Map(manifest.vocabulary.tokens.map((t, i) => [t, i]));
    this.#batcher = new Batcher(
      { ...batching, label: `model ${manifest.name} version ${manifest.version}` },
      (rows) => this.#compute(rows),
      observer,
    );
  }

  /**
   * Loads a version directory (every check of `loadModel`: manifest, checksum, vocabulary hash, tokenizer) on the
   * current tfjs backend and warms it up with a call at the smallest and at the largest batch size. A bag-of-words
   * version is then computed by {@link BowScorer} (no tfjs call per batch) when that equals the tfjs forward pass to
   * float rounding on rows of every length up to 64 and ids across the vocabulary; otherwise by tfjs.
   */
  static async load(dir: string, batching: BatchingOptions, observer: BatchObserver = {}): Promise<LoadedVersion> {
    const { model, manifest } = await loadModel(dir);
    try {
      const tokenize = tokenizerForRawText(manifest.tokenizer.raw);
      const loaded = new LoadedVersion(model, manifest, tokenize, batching, observer);
      await loaded.#warmUp(batching.maxBatch);
      return loaded;
    } catch (e) {
      model.dispose();
      throw e;
    }
  }

  async #warmUp(maxBatch: number): Promise<void> {
    const V = this.manifest.vocabulary.size;
    if (V < 2) return; // nothing but <pad>: every text is answered without the model
    const row = (n: number) => Int32Array.from({ length: n }, (_, k) => 1 + (k % (V - 1)));
    await this.#computeTfjs([row(4)]);
    await this.#computeTfjs(Array.from({ length: Math.min(maxBatch, 64) }, (_, i) => row(1 + (i % 12))));
    const scorer = await BowScorer.of(this.#model);
    if (scorer === undefined) return;
    // Rows of lengths 1..64 whose ids step through the whole vocabulary (a stride prime to V - 1).
    let next = 0;
    const stride = 7919 % (V - 1) || 1;
    const rows = Array.from({ length: 64 }, (_, i) =>
      Int32Array.from({ length: i + 1 }, () => 1 + (next = (next + stride) % (V - 1))),
    );
    const check = scorer.agreesWith(rows, await this.#computeTfjs(rows));
    this.#scorerDifference = check.maxDifference;
    if (check.equal) {
      this.#scorer = scorer;
      // A scorer call costs per text only: holding requests for the rest of the turn would gain nothing.
      this.#batcher.gatherTurn = false;
    }
  }

  /**
   * How this version computes: `bow-scorer` (plain JS, {@link BowScorer}) or `tfjs`; whether its model calls gather
   * the event loop's turn first (tfjs: yes; the scorer: no, see {@link BatcherOptions.gatherTurn}); and for a
   * bag-of-words version the largest difference between the two seen at warm-up.
   */
  get compute(): { path: 'bow-scorer' | 'tfjs'; gatherTurn: boolean; maxDifference?: number } {
    const path = this.#scorer !== undefined ? 'bow-scorer' : 'tfjs';
    const gatherTurn = this.#batcher.gatherTurn;
    return Number.isNaN(this.#scorerDifference)
      ? { path, gatherTurn }
      : { path, gatherTurn, maxDifference: this.#scorerDifference };
  }

  /** P(positive) per id row (rows non-empty), in order. */
  #compute(rows: Int32Array[]): Promise<number[]> {
    const scorer = this.#scorer;
    if (scorer !== undefined) return Promise.resolve(scorer.probabilities(rows));
    return this.#computeTfjs(rows);
  }

  /** {@link #compute} by the model's tfjs forward pass (one padded batch). */
  async #computeTfjs(rows: Int32Array[]): Promise<number[]> {
    const batch = collate(rows.map((inputIds, index) => ({ inputIds, label: 0, index })));
    const p = await this.#model.predictProbabilitiesAsync(batch);
    const out = new Array<number>(rows.length);
    for (let r = 0; r < batch.batchSize; r++) out[batch.indices[r]!] = p[r]!;
    return out;
  }

  get leases(): number {
    return this.#leases;
  }

  get queueDepth(): number {
    return this.#batcher.depth;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** Takes a lease (the caller releases it when done); refused once the version drains. */
  acquire(): boolean {
    if (this.#draining) return false;
    this.#leases++;
    return true;
  }

  release(): void {
    this.#leases--;
    if (this.#leases === 0 && this.#draining) this.#drained?.();
  }

  /** Predicts every text (tokenized, mapped, batched with other calls). The caller holds a lease. */
  async predict(texts: readonly string[], options: EnqueueOptions = {}): Promise<TextPrediction[]> {
    if (this.#disposed) throw new FailedPreconditionError(`model ${this.name} version ${this.version} was unloaded`);
    const n = texts.length;
    const encoded = new Array<EncodedText>(n);
    // Texts with known tokens, longest first: the model calls a long request is cut into then hold texts of similar
    // lengths, so little of each tfjs call is padding.
    const order: number[] = [];
    for (let i = 0; i < n; i++) {
      const e = encodeText(texts[i]!, this.#tokenize, this.#ids);
      encoded[i] = e;
      if (e.ids.length > 0) order.push(i);
    }
    // (The plain scorer pads nothing: its calls may take the texts in any order.)
    if (order.length > 1 && this.#scorer === undefined) {
      order.sort((a, b) => encoded[b]!.ids.length - encoded[a]!.ids.length || a - b);
    }
    const rows = new Array<Int32Array>(order.length);
    for (let k = 0; k < order.length; k++) rows[k] = encoded[order[k]!]!.ids;
    const computed = order.length > 0 ? await this.#batcher.enqueue(rows, options) : [];
    const probabilities = new Float64Array(n).fill(NO_KNOWN_TOKEN_PROBABILITY);
    for (let k = 0; k < order.length; k++) probabilities[order[k]!] = computed[k]!;
    const labels = this.manifest.labels;
    const out = new Array<TextPrediction>(n);
    for (let i = 0; i < n; i++) {
      const e = encoded[i]!;
      const probability = probabilities[i]!;
      const labelId = probability > 0.5 ? 1 : 0;
      out[i] = {
        tokens: e.tokens,
        ids: e.ids,
        oov: e.oov,
        probability,
        labelId,
        label: labels[labelId],
        noKnownToken: e.ids.length === 0,
      };
    }
    return out;
  }

  /**
   * Stops taking leases, waits for the ones held (at most `timeoutMs`), then disposes the model. Resolves with
   * the number of leases still held when it gave up waiting (0 normally).
   */
  async drainAndDispose(timeoutMs: number): Promise<number> {
    this.#draining = true;
    if (this.#leases > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        timer.unref();
        this.#drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    const left = this.#leases;
    this.#batcher.close(new FailedPreconditionError(`model ${this.name} version ${this.version} was unloaded`));
    this.#disposed = true;
    this.#model.dispose();
    return left;
  }
}
