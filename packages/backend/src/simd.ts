/**
 * A small WebAssembly module with 128-bit SIMD loops that tfjs's wasm backend has no kernel for, assembled here
 * from its instructions (no toolchain, no binary in the repository) and instantiated on tfjs's own memory, so it
 * reads and writes tensors where they lie in the heap. Every address and length is in bytes and floats of that
 * memory; nothing is allocated here.
 *
 * Functions (addresses are byte offsets into the heap; float buffers must be 4-byte aligned):
 * - `axpy(y, x, s, n)`: y[i] += s * x[i] for i < n (n a multiple of 4).
 * - `transpose(src, rows, cols, dst)`: dst [cols, rows] = src [rows, cols]^T.
 * - `convPoolGrad(...)`: the sparse gradient of a 1-D convolution followed by ReLU and max over time
 *   (`conv-kernels.ts` says what it computes).
 */

declare global {
  // Node has WebAssembly; the project's compiler settings (lib ES2023, no DOM) do not declare it. What is used here:
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace WebAssembly {
    interface Memory {
      readonly buffer: ArrayBuffer;
      grow(deltaPages: number): number;
    }
    interface Module {
      readonly __module?: never;
    }
    interface Instance {
      readonly exports: Record<string, unknown>;
    }
    const Memory: new (descriptor: { initial: number; maximum?: number }) => Memory;
    const Module: new (bytes: Uint8Array) => Module;
    const Instance: new (module: Module, imports: Record<string, Record<string, unknown>>) => Instance;
    function validate(bytes: Uint8Array): boolean;
  }
}

const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;
type ValType = typeof I32 | typeof F32 | typeof V128;

/** Unsigned LEB128. */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 (32-bit). */
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

const utf8 = (s: string): number[] => {
  const b = [...new TextEncoder().encode(s)];
  return [...uleb(b.length), ...b];
};
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];

/** Instruction writer for one function body. Locals are numbered after the parameters. */
class Code {
  readonly bytes: number[] = [];
  private readonly op = (...b: number[]): this => {
    this.bytes.push(...b);
    return this;
  };
  private readonly simd = (code: number, ...imm: number[]): this => this.op(0xfd, ...uleb(code), ...imm);
  get = (i: number) => this.op(0x20, ...uleb(i));
  set = (i: number) => this.op(0x21, ...uleb(i));
  tee = (i: number) => this.op(0x22, ...uleb(i));
  i32 = (n: number) => this.op(0x41, ...sleb(n));
  call = (f: number) => this.op(0x10, ...uleb(f));
  block = () => this.op(0x02, 0x40);
  loop = () => this.op(0x03, 0x40);
  if = () => this.op(0x04, 0x40);
  end = () => this.op(0x0b);
  br = (depth: number) => this.op(0x0c, ...uleb(depth));
  brIf = (depth: number) => this.op(0x0d, ...uleb(depth));
  // memarg: alignment exponent 2 (4 bytes: float32 data), offset 0
  i32Load = () => this.op(0x28, 2, 0);
  f32Load = () => this.op(0x2a, 2, 0);
  f32Store = () => this.op(0x38, 2, 0);
  i32Eqz = () => this.op(0x45);
  i32LtS = () => this.op(0x48);
  i32LtU = () => this.op(0x49);
  i32GeS = () => this.op(0x4e);
  i32And = () => this.op(0x71);
  i32Or = () => this.op(0x72);
  f32Zero = () => this.op(0x43, 0, 0, 0, 0);
  f32Ne = () => this.op(0x5c);
  i32Add = () => this.op(0x6a);
  i32Mul = () => this.op(0x6c);
  i32Shl = () => this.op(0x74);
  f32Add = () => this.op(0x92);
  v128Load = () => this.simd(0x00, 2, 0);
  v128Store = () => this.simd(0x0b, 2, 0);
  f32x4Splat = () => this.simd(0x13);
  f32x4Add = () => this.simd(0xe4);
  f32x4Mul = () => this.simd(0xe6);
  /** local[i] += n (i32). */
  bump = (i: number, n: number) => this.get(i).i32(n).i32Add().set(i);
  /** Push local[i] * 4 (a float index as a byte offset). */
  bytesOf = (i: number) => this.get(i).i32(2).i32Shl();
}

interface Func {
  name: string;
  params: ValType[];
  locals: ValType[];
  body: (c: Code) => void;
}

const AXPY = 0;
const FUNCS: Func[] = [
  {
    // axpy(y, x, s, n): y[i] += s * x[i], n floats (a multiple of 4), 4 per instruction.
    name: 'axpy',
    params: [I32, I32, F32, I32],
    locals: [V128, I32], // 4: s in every lane, 5: end of y
    body: (c) => {
      const [y, x, s, n, sv, end] = [0, 1, 2, 3, 4, 5];
      c.get(s).f32x4Splat().set(sv);
      c.get(y).bytesOf(n).i32Add().set(end);
      c.block().get(n).i32Eqz().brIf(0);
      c.loop();
      c.get(y).get(y).v128Load().get(x).v128Load().get(sv).f32x4Mul().f32x4Add().v128Store();
      c.bump(x, 16).bump(y, 16);
      c.get(y).get(end).i32LtU().brIf(0);
      c.end().end();
    },
  },
  {
    // transpose(src, rows, cols, dst): dst[c * rows + r] = src[r * cols + c].
    name: 'transpose',
    params: [I32, I32, I32, I32],
    locals: [I32, I32, I32], // 4: r, 5: c, 6: address in dst
    body: (c) => {
      const [src, rows, cols, dst, r, col, at] = [0, 1, 2, 3, 4, 5, 6];
      c.block().get(rows).i32Eqz().get(cols).i32Eqz().i32Or().brIf(0);
      c.i32(0).set(r);
      c.loop();
      c.get(dst).bytesOf(r).i32Add().set(at);
      c.i32(0).set(col);
      c.loop();
      c.get(at).get(src).f32Load().f32Store();
      c.bump(src, 4);
      c.get(at).get(rows).i32(2).i32Shl().i32Add().set(at);
      c.bump(col, 1).get(col).get(cols).i32LtS().brIf(0);
      c.end();
      c.bump(r, 1).get(r).get(rows).i32LtS().brIf(0);
      c.end().end();
    },
  },
  {
    // convPoolGrad(dy, at, x, wt, dwt, dx, db, B, F, exStride, d, K, inputGrad): for each example b and filter f
    // with a window (at[b, f] >= 0) and a gradient s = dy[b, f] != 0, the window's K = k * d inputs starting at
    // x[b * exStride + at * d]: dwt[f] += s * window; if inputGrad, the window in dx += s * wt[f]; db[f] += s.
    name: 'convPoolGrad',
    params: [I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32],
    locals: [I32, I32, I32, I32, F32, I32, I32], // 13: b, 14: f, 15: p (bytes into dy / at), 16: t, 17: s, 18: window, 19: db + 4f
    body: (c) => {
      const [dy, at, x, wt, dwt, dx, db, B, F, exStride, d, K, inputGrad] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
      const [b, f, p, t, s, win, dbf] = [13, 14, 15, 16, 17, 18, 19];
      c.block().get(B).i32Eqz().get(F).i32Eqz().i32Or().brIf(0);
      c.i32(0).set(b).i32(0).set(p);
      c.loop(); // over b
      c.i32(0).set(f);
      c.get(db).set(dbf);
      c.loop(); // over f
      c.get(at).get(p).i32Add().i32Load().set(t);
      c.get(dy).get(p).i32Add().f32Load().set(s);
      c.get(t).i32(0).i32GeS().get(s).f32Zero().f32Ne().i32And().if();
      // window = b * exStride + t * d (floats)
      c.get(b).get(exStride).i32Mul().get(t).get(d).i32Mul().i32Add().set(win);
      c.get(dwt).get(f).get(K).i32Mul().i32(2).i32Shl().i32Add();
      c.get(x).bytesOf(win).i32Add();
      c.get(s).get(K).call(AXPY);
      c.get(inputGrad).if();
      c.get(dx).bytesOf(win).i32Add();
      c.get(wt).get(f).get(K).i32Mul().i32(2).i32Shl().i32Add();
      c.get(s).get(K).call(AXPY);
      c.end();
      c.get(dbf).get(dbf).f32Load().get(s).f32Add().f32Store();
      c.end();
      c.bump(p, 4).bump(dbf, 4);
      c.bump(f, 1).get(f).get(F).i32LtS().brIf(0);
      c.end();
      c.bump(b, 1).get(b).get(B).i32LtS().brIf(0);
      c.end().end();
    },
  },
];

function assemble(): Uint8Array {
  const types = FUNCS.map((f) => [0x60, ...vec(f.params.map((t) => [t])), 0x00]);
  // One import: the memory, with no minimum or maximum of its own (any memory tfjs has grown to fits).
  const imports = vec([[...utf8('env'), ...utf8('memory'), 0x02, 0x00, 0x00]]);
  const funcs = vec(FUNCS.map((_, i) => uleb(i)));
  const exports = vec(FUNCS.map((f, i) => [...utf8(f.name), 0x00, ...uleb(i)]));
  const bodies = FUNCS.map((f) => {
    const c = new Code();
    f.body(c);
    const locals = vec(f.locals.map((t) => [1, t]));
    const body = [...locals, ...c.bytes, 0x0b];
    return [...uleb(body.length), ...body];
  });
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vec(types)),
    ...section(2, imports),
    ...section(3, funcs),
    ...section(7, exports),
    ...section(10, vec(bodies)),
  ]);
}

/** The module's functions, bound to one memory. Addresses in bytes, lengths in floats. */
export interface SimdCalls {
  axpy(y: number, x: number, s: number, n: number): void;
  transpose(src: number, rows: number, cols: number, dst: number): void;
  convPoolGrad(
    dy: number,
    at: number,
    x: number,
    wt: number,
    dwt: number,
    dx: number,
    db: number,
    B: number,
    F: number,
    exStride: number,
    d: number,
    K: number,
    inputGrad: number,
  ): void;
}

let compiled: WebAssembly.Module | null | undefined;
const byMemory = new WeakMap<WebAssembly.Memory, SimdCalls>();

/** Whether this runtime validates the module (WebAssembly with 128-bit SIMD). */
export function simdSupported(): boolean {
  if (compiled === undefined) {
    const bytes = assemble();
    compiled = typeof WebAssembly === 'object' && WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
  }
  return compiled !== null;
}

/** The module instantiated on `memory` (once per memory). Throws where `simdSupported()` is false. */
export function simdOn(memory: WebAssembly.Memory): SimdCalls {
  let calls = byMemory.get(memory);
  if (calls === undefined) {
    if (!simdSupported()) throw new Error('this runtime has no WebAssembly SIMD');
    const instance = new WebAssembly.Instance(compiled!, { env: { memory } });
    calls = instance.exports as unknown as SimdCalls;
    byMemory.set(memory, calls);
  }
  return calls;
}
