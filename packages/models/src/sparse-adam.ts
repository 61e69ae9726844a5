/**
 * Adam over the rows of an embedding matrix at the cost of the rows a step touches, never O(|V| x d) per step.
 * Row 0 (PAD) is never updated.
 *
 * Two semantics (`mode`):
 * - `lazy`: PyTorch SparseAdam / TF LazyAdam: moments and parameters of a row change only on steps whose batch
 *   uses the row.
 * - `dense` (default): the same trajectory as dense Adam (PyTorch's torch.optim.Adam on a dense gradient, as the
 *   reference trainer uses), computed lazily: on a step where the batch has zero gradient for a row, dense Adam
 *   still moves it by its decaying momentum. Those missed moves are applied in closed form when the row is next
 *   touched, or by `flush()` (before the table is read): moments decay by beta^k, and the parameter moves by
 *   (m/sqrt(v)) * sum_j c_(t0+j) (beta1/sqrt(beta2))^j (epsilon neglected in the missed steps, where it is ~1e-8
 *   against sqrt(v)); the sum is truncated when its terms fall under 1e-12 of the first.
 */
export type SparseAdamMode = 'lazy' | 'dense';

export class SparseRowAdam {
  private readonly m: Float32Array;
  private readonly v: Float32Array;
  /** Last step whose update is applied to each row (dense mode). */
  private readonly last: Int32Array;
  private t = 0;
  private scratch = new Float32Array(0);

  constructor(
    readonly rows: number,
    readonly dim: number,
    readonly learningRate: number,
    readonly mode: SparseAdamMode = 'dense',
    readonly beta1 = 0.9,
    readonly beta2 = 0.999,
    readonly epsilon = 1e-8,
  ) {
    this.m = new Float32Array(rows * dim);
    this.v = new Float32Array(rows * dim);
    this.last = new Int32Array(mode === 'dense' ? rows : 0);
  }

  get steps(): number {
    return this.t;
  }

  private sizes = new Float64Array(0);

  /** Adam's step size at step s (cached): lr * sqrt(1 - beta2^s) / (1 - beta1^s). */
  private stepSize(s: number): number {
    if (s >= this.sizes.length) {
      const next = new Float64Array(Math.max(1024, s * 2));
      next.set(this.sizes);
      for (let u = this.sizes.length; u < next.length; u++) {
        next[u] = u === 0 ? 0 : (this.learningRate * Math.sqrt(1 - Math.pow(this.beta2, u))) / (1 - Math.pow(this.beta1, u));
      }
      this.sizes = next;
    }
    return this.sizes[s]!;
  }

  /** Applies to `row` the dense-Adam moves of steps last+1 .. upTo, in which its gradient was zero. */
  private catchUp(table: Float32Array, row: number, upTo: number): void {
    const from = this.last[row]!;
    this.last[row] = upTo;
    const k = upTo - from;
    if (k <= 0 || from === 0) return; // never updated: zero moments, nothing to move
    const { beta1: b1, beta2: b2 } = this;
    const r = b1 / Math.sqrt(b2);
    let sum = 0;
    let rj = 1;
    for (let j = 1; j <= k; j++) {
      rj *= r;
      sum += this.stepSize(from + j) * rj;
      if (rj < 1e-12) break;
    }
    const d = this.dim;
    const o = row * d;
    const m = this.m;
    const v = this.v;
    const decay1 = Math.pow(b1, k);
    const decay2 = Math.pow(b2, k);
    for (let j = 0; j < d; j++) {
      const vj = v[o + j]!;
      if (vj > 0) table[o + j]! -= (sum * m[o + j]!) / Math.sqrt(vj);
      m[o + j] = m[o + j]! * decay1;
      v[o + j] = vj * decay2;
    }
  }

  /**
   * Dense mode: brings `ids` up to date before a step reads them (the forward pass must see the rows as dense Adam
   * would have left them). Lazy mode: nothing to do.
   */
  catchUpRows(table: Float32Array, ids: Int32Array): void {
    if (this.mode !== 'dense') return;
    for (let r = 0; r < ids.length; r++) {
      const row = ids[r]!;
      if (row !== 0 && this.last[row] !== this.t) this.catchUp(table, row, this.t);
    }
  }

  /** Dense mode: brings every row up to date (call before reading the table). Lazy mode: nothing to do. */
  flush(table: Float32Array): void {
    if (this.mode !== 'dense') return;
    for (let row = 1; row < this.rows; row++) if (this.last[row] !== this.t) this.catchUp(table, row, this.t);
  }

  /**
   * Updates `table` in place from per-position gradients: `tokenGrad` [N, d] is the gradient w.r.t. the batch's
   * token embeddings, `local[i]` says which of `ids` position i looked up (0 = PAD, r + 1 = ids[r]). Gradients of
   * positions that looked up the same row are summed (the lookup's backward pass), then each touched row gets one
   * Adam update.
   */
  step(table: Float32Array, ids: Int32Array, local: Int32Array, tokenGrad: Float32Array): void {
    const d = this.dim;
    const U1 = ids.length + 1;
    if (this.scratch.length < U1 * d) this.scratch = new Float32Array(U1 * d * 2);
    const grad = this.scratch;
    grad.fill(0, 0, U1 * d);
    for (let i = 0; i < local.length; i++) {
      const r = local[i]!;
      if (r === 0) continue;
      const go = r * d;
      const so = i * d;
      for (let j = 0; j < d; j++) grad[go + j]! += tokenGrad[so + j]!;
    }
    this.t++;
    const { beta1: b1, beta2: b2, epsilon: eps } = this;
    const bc1 = 1 - Math.pow(b1, this.t);
    const sqrtBc2 = Math.sqrt(1 - Math.pow(b2, this.t));
    const m = this.m;
    const v = this.v;
    const dense = this.mode === 'dense';
    for (let r = 0; r < ids.length; r++) {
      const row = ids[r]!;
      if (row === 0) continue;
      if (dense) {
        this.catchUp(table, row, this.t - 1);
        this.last[row] = this.t;
      }
      const o = row * d;
      const go = (r + 1) * d;
      for (let j = 0; j < d; j++) {
        const g = grad[go + j]!;
        const mj = b1 * m[o + j]! + (1 - b1) * g;
        const vj = b2 * v[o + j]! + (1 - b2) * g * g;
        m[o + j] = mj;
        v[o + j] = vj;
        // PyTorch Adam: p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)
        table[o + j]! -= ((this.learningRate / bc1) * mj) / (Math.sqrt(vj) / sqrtBc2 + eps);
      }
    }
  }
}
