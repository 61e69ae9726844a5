import { InvalidInputError } from '@ch8/errors';

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

/** The state of a {@link SparseRowAdam} (what a checkpoint stores). */
export interface SparseAdamState {
  /** Steps taken. */
  t: number;
  /** First and second moments, rows x dim. */
  m: Float32Array;
  v: Float32Array;
  /** Dense mode: the last step applied to each row (rows entries); lazy mode: empty. */
  last: Int32Array;
}

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
    private lr: number,
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

  /** The learning rate of the next step. */
  get learningRate(): number {
    return this.lr;
  }

  /**
   * Changes the learning rate from the next step on. Dense mode first applies every row's pending moves with the
   * old rate (they belong to steps already taken), so `table` is brought up to date here.
   */
  setLearningRate(table: Float32Array, lr: number): void {
    if (!(typeof lr === 'number' && lr > 0 && Number.isFinite(lr))) {
      throw new InvalidInputError(`must be a positive number, got ${lr}`, { field: 'learningRate' });
    }
    if (lr === this.lr) return;
    this.flush(table);
    this.lr = lr;
    this.sizes = new Float64Array(0);
  }

  private sizes = new Float64Array(0);

  /** Adam's step size at step s (cached): lr * sqrt(1 - beta2^s) / (1 - beta1^s). */
  private stepSize(s: number): number {
    if (s >= this.sizes.length) {
      const next = new Float64Array(Math.max(1024, s * 2));
      next.set(this.sizes);
      for (let u = this.sizes.length; u < next.length; u++) {
        next[u] = u === 0 ? 0 : (this.lr * Math.sqrt(1 - Math.pow(this.beta2, u))) / (1 - Math.pow(this.beta1, u));
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
    this.update(table, ids, grad, 1);
  }

  /**
   * Updates `table` in place from per-row gradients already summed: row r of `rowGrad` [ids.length, d] is the
   * gradient of row `ids[r]` (distinct ids; PAD entries are skipped). One Adam step, as {@link step}.
   */
  stepRows(table: Float32Array, ids: Int32Array, rowGrad: Float32Array): void {
    if (rowGrad.length !== ids.length * this.dim) {
      throw new InvalidInputError(`has ${rowGrad.length} values, expected ids*dim = ${ids.length * this.dim}`, {
        field: 'rowGrad',
      });
    }
    this.update(table, ids, rowGrad, 0);
  }

  /** One Adam step on the rows `ids`; the gradient of ids[r] is row r + `base` of `grad`. */
  private update(table: Float32Array, ids: Int32Array, grad: Float32Array, base: number): void {
    const d = this.dim;
    this.t++;
    const { beta1: b1, beta2: b2, epsilon: eps } = this;
    const bc1 = 1 - Math.pow(b1, this.t);
    const sqrtBc2 = Math.sqrt(1 - Math.pow(b2, this.t));
    const m = this.m;
    const v = this.v;
    const dense = this.mode === 'dense';
    // Loop invariants hoisted (the same arithmetic, so the same floats).
    const size = this.lr / bc1;
    const c1 = 1 - b1;
    const c2 = 1 - b2;
    for (let r = 0; r < ids.length; r++) {
      const row = ids[r]!;
      if (row === 0) continue;
      if (dense) {
        this.catchUp(table, row, this.t - 1);
        this.last[row] = this.t;
      }
      const o = row * d;
      const go = (r + base) * d;
      for (let j = 0; j < d; j++) {
        const g = grad[go + j]!;
        const mj = b1 * m[o + j]! + c1 * g;
        const vj = b2 * v[o + j]! + c2 * g * g;
        m[o + j] = mj;
        v[o + j] = vj;
        // PyTorch Adam: p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)
        table[o + j]! -= (size * mj) / (Math.sqrt(vj) / sqrtBc2 + eps);
      }
    }
  }

  /** A copy of everything the next steps depend on (for checkpoints). */
  getState(): SparseAdamState {
    return { t: this.t, m: Float32Array.from(this.m), v: Float32Array.from(this.v), last: Int32Array.from(this.last) };
  }

  /** Restores {@link getState}'s output (copied); shapes must match this optimizer's, else InvalidInputError. */
  setState(state: SparseAdamState, prefix = ''): void {
    const check = (ok: boolean, field: string, what: string): void => {
      if (!ok) throw new InvalidInputError(what, { field: `${prefix}${field}` });
    };
    check(Number.isInteger(state.t) && state.t >= 0, 't', `must be a non-negative integer, got ${state.t}`);
    const n = this.rows * this.dim;
    check(state.m instanceof Float32Array && state.m.length === n, 'm', `must be a Float32Array of rows*dim = ${n}`);
    check(state.v instanceof Float32Array && state.v.length === n, 'v', `must be a Float32Array of rows*dim = ${n}`);
    const nLast = this.last.length;
    check(
      state.last instanceof Int32Array && state.last.length === nLast,
      'last',
      `must be an Int32Array of ${nLast} (${this.mode} mode)`,
    );
    for (let i = 0; i < state.last.length; i++) {
      const l = state.last[i]!;
      if (l < 0 || l > state.t) check(false, 'last', `row ${i}: step ${l} outside 0..${state.t}`);
    }
    this.t = state.t;
    this.m.set(state.m);
    this.v.set(state.v);
    this.last.set(state.last);
  }
}
