/** Small seeded PRNG (mulberry32) so that inits and dropout masks are reproducible on every backend. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Fills `out` with U(-bound, bound). */
  uniform(out: Float32Array, bound: number): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = (this.next() * 2 - 1) * bound;
    return out;
  }

  /** Inverted-dropout keep mask: 1/(1-rate) with probability 1-rate, else 0. */
  dropoutMask(n: number, rate: number): Float32Array {
    const out = new Float32Array(n);
    const scale = 1 / (1 - rate);
    for (let i = 0; i < n; i++) out[i] = this.next() >= rate ? scale : 0;
    return out;
  }
}
