import { uniform01 } from '@ch8/random';

/** Small seeded PRNG (mulberry32) so that inits and dropout masks are reproducible on every backend. */
export class Rng {
  /** Uniform in [0, 1). */
  readonly next: () => number;

  constructor(seed: number) {
    this.next = uniform01(seed);
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
