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
   * current tfjs backend and warms it up with a call at the smallest and at the largest batch size.
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
    await this.#compute([row(4)]);
    await this.#compute(Array.from({ length: Math.min(maxBatch, 64) }, (_, i) => row(1 + (i % 12))));
  }

  /** P(positive) per id row (rows non-empty), in order. */
  async #compute(rows: Int32Array[]): Promise<number[]> {
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
    const encoded = texts.map((t) => encodeText(t, this.#tokenize, this.#ids));
    // Texts with known tokens, longest first: the model calls a long request is cut into then hold texts of similar
    // lengths, so little of each call is padding.
    const order: number[] = [];
    for (let i = 0; i < encoded.length; i++) if (encoded[i]!.ids.length > 0) order.push(i);
    if (order.length > 1) order.sort((a, b) => encoded[b]!.ids.length - encoded[a]!.ids.length || a - b);
    const computed =
      order.length > 0
        ? await this.#batcher.enqueue(
            order.map((i) => encoded[i]!.ids),
            options,
          )
        : [];
    const probabilities = new Array<number>(encoded.length);
    order.forEach((i, k) => (probabilities[i] = computed[k]!));
    const labels = this.manifest.labels;
    return encoded.map((e, i) => {
      const noKnownToken = e.ids.length === 0;
      const probability = noKnownToken ? NO_KNOWN_TOKEN_PROBABILITY : probabilities[i]!;
      const labelId = probability > 0.5 ? 1 : 0;
      return { ...e, probability, labelId, label: labels[labelId], noKnownToken };
    });
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
