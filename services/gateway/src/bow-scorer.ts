/**
 * Plain-JavaScript inference for the bag-of-words models (`bow-frozen`, `bow-finetune`, problem 72): P(positive) =
 * sigmoid(mean_t E[id_t] . w + b). The model is linear in the token rows, so the mean of the rows dotted with w is
 * the mean of the rows' own scores E[id] . w: those are computed once per loaded version (float64, one number per
 * vocabulary row), and a text then costs one lookup and one add per token, with no tensor, no padding and no
 * compute-backend call. The tfjs forward pass computes the same function in float32; a gateway uses this scorer only
 * after checking, at warm-up, that the two agree to float rounding on the version's own weights
 * ({@link BowScorer.agreesWith}).
 */
import type { SentimentModel } from '@ch8/models/model';

/** The model kinds this scorer computes: the masked mean of the embeddings, then one dense unit. */
export const BOW_KINDS: ReadonlySet<string> = new Set(['bow-frozen', 'bow-finetune']);

/**
 * Largest difference in P(positive) between this scorer and the tfjs forward pass for which the two count as equal:
 * float32 rounding of a mean over the tokens and a dot product over the dimension moves a probability by a few
 * 1e-7; a wrong weight, bias or mask moves it by orders of magnitude more.
 */
export const FLOAT_ROUNDING_TOLERANCE = 1e-5;

export class BowScorer {
  /** E[id] . w for every vocabulary row (row 0, PAD, is never read: ids are >= 1). */
  readonly #rowScores: Float64Array;
  readonly #bias: number;

  private constructor(rowScores: Float64Array, bias: number) {
    this.#rowScores = rowScores;
    this.#bias = bias;
  }

  /**
   * The scorer of `model`'s current weights, or undefined when the model is not a bag-of-words model (or its weights
   * do not have the shapes of one). Reads the weights with `await data()`, so it works on every backend.
   */
  static async of(model: SentimentModel): Promise<BowScorer | undefined> {
    const { kind, vocabSize: V, dim: d } = model.config;
    if (!BOW_KINDS.has(kind)) return undefined;
    const weights = await model.getWeightsAsync();
    const byName = new Map(weights.map((w) => [w.name, w.values]));
    const kernel = byName.get('out/kernel');
    const bias = byName.get('out/bias');
    const table = byName.get('embeddings');
    if (weights.length !== 3 || kernel?.length !== d || bias?.length !== 1 || table?.length !== V * d) return undefined;
    const rowScores = new Float64Array(V);
    for (let id = 0; id < V; id++) {
      let s = 0;
      const at = id * d;
      for (let j = 0; j < d; j++) s += table[at + j]! * kernel[j]!;
      rowScores[id] = s;
    }
    return new BowScorer(rowScores, bias[0]!);
  }

  /** P(positive) of one text's ids (non-empty, every id a row of the vocabulary other than PAD), as float32. */
  probability(ids: Int32Array): number {
    const scores = this.#rowScores;
    let sum = 0;
    for (let t = 0; t < ids.length; t++) sum += scores[ids[t]!]!;
    const z = sum / ids.length + this.#bias;
    // The answer carries a float32 (proto `float`, OIP FP32): rounded here so the label follows the value sent.
    return Math.fround(1 / (1 + Math.exp(-z)));
  }

  /** {@link probability} per row, in order. */
  probabilities(rows: readonly Int32Array[]): number[] {
    const out = new Array<number>(rows.length);
    for (let i = 0; i < rows.length; i++) out[i] = this.probability(rows[i]!);
    return out;
  }

  /**
   * Whether this scorer equals `reference` (the tfjs forward pass's probabilities for the same rows) to float
   * rounding: every difference at most {@link FLOAT_ROUNDING_TOLERANCE}. Returns the largest difference too.
   */
  agreesWith(rows: readonly Int32Array[], reference: ArrayLike<number>): { equal: boolean; maxDifference: number } {
    let maxDifference = 0;
    for (let i = 0; i < rows.length; i++) {
      const diff = Math.abs(this.probability(rows[i]!) - reference[i]!);
      // NaN (a reference that is not a number) is never equal.
      if (!(diff <= maxDifference)) maxDifference = Number.isNaN(diff) ? Infinity : diff;
    }
    return { equal: rows.length === reference.length && maxDifference <= FLOAT_ROUNDING_TOLERANCE, maxDifference };
  }
}
