/**
 * Lazy (sparse) Adam over the rows of an embedding matrix, as PyTorch's SparseAdam: per-row first and second
 * moments, updated only for the rows a step's gradient touches, bias correction from the global step count.
 * A step costs O(rows touched x d), never O(|V| x d). Row 0 (PAD) is never updated.
 */
export class SparseRowAdam {
  private readonly m: Float32Array;
  private readonly v: Float32Array;
  private t = 0;
  private scratch = new Float32Array(0);

  constructor(
    readonly rows: number,
    readonly dim: number,
    readonly learningRate: number,
    readonly beta1 = 0.9,
    readonly beta2 = 0.999,
    readonly epsilon = 1e-8,
  ) {
    this.m = new Float32Array(rows * dim);
    this.v = new Float32Array(rows * dim);
  }

  get steps(): number {
    return this.t;
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
    const stepSize = (this.learningRate * Math.sqrt(1 - Math.pow(b2, this.t))) / (1 - Math.pow(b1, this.t));
    const m = this.m;
    const v = this.v;
    for (let r = 0; r < ids.length; r++) {
      const row = ids[r]!;
      if (row === 0) continue;
      const o = row * d;
      const go = (r + 1) * d;
      for (let j = 0; j < d; j++) {
        const g = grad[go + j]!;
        const mj = b1 * m[o + j]! + (1 - b1) * g;
        const vj = b2 * v[o + j]! + (1 - b2) * g * g;
        m[o + j] = mj;
        v[o + j] = vj;
        table[o + j]! -= (stepSize * mj) / (Math.sqrt(vj) + eps);
      }
    }
  }
}
