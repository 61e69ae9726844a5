/**
 * Plain-array building blocks of the kernels: broadcasting, tiling, gathering rows, segment sums and the
 * im2col / col2im of a 2-D convolution (NHWC). Each works on flat row-major typed arrays (for wasm: views of
 * the wasm heap) and copies contiguous runs with `set`/`copyWithin` wherever it can.
 */

export type Flat = Float32Array | Int32Array | Uint8Array;

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d] as number;
  }
  return s;
}

/** Left-pad `shape` with 1s to `rank` dimensions. */
export function alignRank(shape: readonly number[], rank: number): number[] {
  return [...new Array<number>(rank - shape.length).fill(1), ...shape];
}

/**
 * dst (shape `outShape`) = src (shape `inShape`, same rank, each dim equal or 1) broadcast to `outShape`.
 */
export function broadcastInto(src: Flat, inShape: readonly number[], outShape: readonly number[], dst: Flat): void {
  const rank = outShape.length;
  const sStr = stridesOf(inShape);
  const dStr = stridesOf(outShape);
  let split = rank;
  while (split > 0 && inShape[split - 1] === outShape[split - 1]) split--;
  const block = sizeOf(outShape.slice(split));
  const rec = (d: number, so: number, doff: number): void => {
    if (d === split) {
      if (block === 1) dst[doff] = src[so] as number;
      else dst.set(src.subarray(so, so + block), doff);
      return;
    }
    const n = outShape[d] as number;
    const ds = dStr[d] as number;
    if (inShape[d] === 1) {
      if (ds === 1) {
        dst.fill(src[so] as number, doff, doff + n);
        return;
      }
      rec(d + 1, so, doff);
      for (let i = 1; i < n; i++) dst.copyWithin(doff + i * ds, doff, doff + ds);
      return;
    }
    const ss = sStr[d] as number;
    for (let i = 0; i < n; i++) rec(d + 1, so + i * ss, doff + i * ds);
  };
  if (sizeOf(outShape) > 0) rec(0, 0, 0);
}

/** dst = src[begin : begin + size] (per dimension); copies the contiguous innermost runs with `set`. */
export function sliceInto(
  src: Flat,
  shape: readonly number[],
  begin: readonly number[],
  size: readonly number[],
  dst: Flat,
): void {
  const rank = shape.length;
  if (sizeOf(size) === 0) return;
  let split = rank;
  while (split > 0 && begin[split - 1] === 0 && size[split - 1] === shape[split - 1]) split--;
  if (split === 0) {
    dst.set(src.subarray(0, dst.length));
    return;
  }
  const str = stridesOf(shape);
  const last = split - 1;
  const run = (size[last] as number) * (str[last] as number);
  const start = (begin[last] as number) * (str[last] as number);
  let w = 0;
  const rec = (d: number, so: number): void => {
    if (d === last) {
      dst.set(src.subarray(so + start, so + start + run), w);
      w += run;
      return;
    }
    const b = begin[d] as number;
    const s = str[d] as number;
    for (let i = 0; i < (size[d] as number); i++) rec(d + 1, so + (b + i) * s);
  };
  rec(0, 0);
}

/** Geometry of a 2-D pooling in NHWC (dilation 1), as tfjs's computePool2DInfo gives it. */
export interface PoolGeometry {
  batchSize: number;
  inHeight: number;
  inWidth: number;
  channels: number;
  outHeight: number;
  outWidth: number;
  filterHeight: number;
  filterWidth: number;
  strideHeight: number;
  strideWidth: number;
  padTop: number;
  padLeft: number;
}

/**
 * Gradient of max pooling: each dy goes to the first maximum of its window (row-major scan, strict `>`, as
 * tfjs's cpu kernel does). Channels are the inner loop, so the scan reads x contiguously.
 */
export function maxPoolGradInto(x: Float32Array, dy: Float32Array, g: PoolGeometry, dx: Float32Array): void {
  dx.fill(0);
  const C = g.channels;
  if (
    g.outHeight === 1 &&
    g.outWidth === 1 &&
    g.padTop === 0 &&
    g.padLeft === 0 &&
    g.filterHeight === g.inHeight &&
    g.filterWidth === g.inWidth
  ) {
    // One window over each example's whole input (the max over time of a CNN): a scan per channel, no scratch.
    const S = g.inHeight * g.inWidth;
    for (let b = 0; b < g.batchSize; b++) {
      const base = b * S * C;
      for (let c = 0; c < C; c++) {
        let best = -Infinity;
        let at = -1;
        for (let i = base + c; i < base + S * C; i += C) {
          const v = x[i] as number;
          if (v > best) {
            best = v;
            at = i;
          }
        }
        if (at >= 0) dx[at] = dy[b * C + c] as number;
      }
    }
    return;
  }
  const best = new Float32Array(C);
  const pos = new Int32Array(C);
  let o = 0;
  for (let b = 0; b < g.batchSize; b++) {
    for (let oh = 0; oh < g.outHeight; oh++) {
      for (let ow = 0; ow < g.outWidth; ow++, o += C) {
        best.fill(-Infinity);
        pos.fill(-1);
        for (let wr = 0; wr < g.filterHeight; wr++) {
          const xr = oh * g.strideHeight - g.padTop + wr;
          if (xr < 0 || xr >= g.inHeight) continue;
          for (let wc = 0; wc < g.filterWidth; wc++) {
            const xc = ow * g.strideWidth - g.padLeft + wc;
            if (xc < 0 || xc >= g.inWidth) continue;
            const base = ((b * g.inHeight + xr) * g.inWidth + xc) * C;
            for (let c = 0; c < C; c++) {
              const v = x[base + c] as number;
              if (v > (best[c] as number)) {
                best[c] = v;
                pos[c] = base + c;
              }
            }
          }
        }
        for (let c = 0; c < C; c++) {
          const p = pos[c] as number;
          if (p >= 0) dx[p] = (dx[p] as number) + (dy[o + c] as number);
        }
      }
    }
  }
}

/** dst = src reversed along every dimension d with reversed[d]; contiguous unreversed runs copied with `set`. */
export function reverseInto(src: Flat, shape: readonly number[], reversed: readonly boolean[], dst: Flat): void {
  const rank = shape.length;
  if (sizeOf(shape) === 0) return;
  let split = rank;
  while (split > 0 && !reversed[split - 1]) split--;
  const block = sizeOf(shape.slice(split));
  const str = stridesOf(shape);
  const rec = (d: number, so: number, doff: number): void => {
    if (d === split) {
      if (block === 1) dst[doff] = src[so] as number;
      else dst.set(src.subarray(so, so + block), doff);
      return;
    }
    const n = shape[d] as number;
    const s = str[d] as number;
    for (let i = 0; i < n; i++) rec(d + 1, so + (reversed[d] ? n - 1 - i : i) * s, doff + i * s);
  };
  rec(0, 0, 0);
}

/** dst = tile(src, reps): dst shape is inShape[d] * reps[d]. */
export function tileInto(src: Flat, inShape: readonly number[], reps: readonly number[], dst: Flat): void {
  const rank = inShape.length;
  const outShape = inShape.map((d, i) => d * (reps[i] as number));
  const sStr = stridesOf(inShape);
  const dStr = stridesOf(outShape);
  let split = rank;
  while (split > 0 && reps[split - 1] === 1) split--;
  const block = sizeOf(inShape.slice(split));
  const rec = (d: number, so: number, doff: number): void => {
    if (d === split) {
      dst.set(src.subarray(so, so + block), doff);
      return;
    }
    const n = inShape[d] as number;
    const ss = sStr[d] as number;
    const ds = dStr[d] as number;
    for (let i = 0; i < n; i++) rec(d + 1, so + i * ss, doff + i * ds);
    const span = n * ds;
    for (let r = 1; r < (reps[d] as number); r++) dst.copyWithin(doff + r * span, doff, doff + span);
  };
  if (sizeOf(outShape) > 0) rec(0, 0, 0);
}

/**
 * Gather along one axis: src viewed as [batch, outer, dim, slice], indices as [batch, n];
 * dst[b, o, i, :] = src[b, o, indices[b, i], :]. Returns the first out-of-range index, or -1 when all are valid
 * (dst is then complete).
 */
export function gatherInto(
  src: Flat,
  indices: ArrayLike<number>,
  batch: number,
  outer: number,
  dim: number,
  slice: number,
  dst: Flat,
): number {
  const n = indices.length / batch;
  for (let i = 0; i < indices.length; i++) {
    const v = indices[i] as number;
    if (!(v >= 0 && v < dim)) return i;
  }
  let w = 0;
  for (let b = 0; b < batch; b++) {
    for (let o = 0; o < outer; o++) {
      const base = (b * outer + o) * dim;
      for (let i = 0; i < n; i++) {
        const s = (base + (indices[b * n + i] as number)) * slice;
        if (slice === 1) dst[w] = src[s] as number;
        else dst.set(src.subarray(s, s + slice), w);
        w += slice;
      }
    }
  }
  return -1;
}

/** out[s, :] = sum of x[i, :] over i with ids[i] == s; ids outside [0, numSegments) are dropped, as in TF. */
export function segmentSumInto(
  x: ArrayLike<number>,
  ids: ArrayLike<number>,
  numSegments: number,
  inner: number,
  out: Flat | Float64Array,
): void {
  out.fill(0);
  const n = ids.length;
  for (let i = 0; i < n; i++) {
    const s = ids[i] as number;
    if (!(s >= 0 && s < numSegments)) continue;
    const src = i * inner;
    const dst = s * inner;
    for (let j = 0; j < inner; j++) out[dst + j] = (out[dst + j] as number) + (x[src + j] as number);
  }
}

/** Geometry of a 2-D convolution in NHWC, as tfjs's computeConv2DInfo gives it. */
export interface ConvGeometry {
  batchSize: number;
  inHeight: number;
  inWidth: number;
  inChannels: number;
  outHeight: number;
  outWidth: number;
  filterHeight: number;
  filterWidth: number;
  strideHeight: number;
  strideWidth: number;
  padTop: number;
  padLeft: number;
}

/**
 * Walk the (output position, filter row) pairs of a convolution: for each, the contiguous run of input
 * elements (filter columns wc0..wc1, all channels) and where that run sits in the im2col row.
 * `visit(n, colOffset, xOffset, length)`.
 */
function forEachPatchRun(g: ConvGeometry, visit: (colOff: number, xOff: number, len: number) => void): void {
  const k = g.filterHeight * g.filterWidth * g.inChannels;
  let n = 0;
  for (let b = 0; b < g.batchSize; b++) {
    for (let yr = 0; yr < g.outHeight; yr++) {
      for (let yc = 0; yc < g.outWidth; yc++, n++) {
        const xc0 = yc * g.strideWidth - g.padLeft;
        const wc0 = Math.max(0, -xc0);
        const wc1 = Math.min(g.filterWidth, g.inWidth - xc0);
        if (wc1 <= wc0) continue;
        for (let wr = 0; wr < g.filterHeight; wr++) {
          const xr = yr * g.strideHeight + wr - g.padTop;
          if (xr < 0 || xr >= g.inHeight) continue;
          const xOff = ((b * g.inHeight + xr) * g.inWidth + xc0 + wc0) * g.inChannels;
          const colOff = n * k + (wr * g.filterWidth + wc0) * g.inChannels;
          visit(colOff, xOff, (wc1 - wc0) * g.inChannels);
        }
      }
    }
  }
}

/** cols [B*OH*OW, FH*FW*C] from x [B, H, W, C]; zero where the patch lies in the padding. */
export function im2col(x: Float32Array, g: ConvGeometry, cols: Float32Array): void {
  cols.fill(0);
  forEachPatchRun(g, (colOff, xOff, len) => cols.set(x.subarray(xOff, xOff + len), colOff));
}

/** dx [B, H, W, C] = sum of each cols row scattered back onto its patch (the adjoint of im2col). */
export function col2im(cols: Float32Array, g: ConvGeometry, dx: Float32Array): void {
  dx.fill(0);
  if (
    g.filterHeight === 1 &&
    g.inHeight === 1 &&
    g.strideWidth === 1 &&
    g.padLeft === 0 &&
    g.outWidth === g.inWidth - g.filterWidth + 1
  ) {
    // A conv1d without padding: each cols row is one contiguous run of dx, added in place.
    const run = g.filterWidth * g.inChannels;
    const W = g.inWidth;
    const C = g.inChannels;
    const n = g.outWidth;
    for (let b = 0; b < g.batchSize; b++) {
      for (let t = 0; t < n; t++) {
        const o = (b * W + t) * C;
        const s = (b * n + t) * run;
        for (let i = 0; i < run; i++) dx[o + i] = (dx[o + i] as number) + (cols[s + i] as number);
      }
    }
    return;
  }
  forEachPatchRun(g, (colOff, xOff, len) => {
    for (let j = 0; j < len; j++) dx[xOff + j] = (dx[xOff + j] as number) + (cols[colOff + j] as number);
  });
}
