/** The seeded PRNG of @ch8/datasets: @ch8/random's mulberry32 started from a hash of the seed. */
import { mix32, uniform01 } from '@ch8/random';

export { shuffleInPlace } from '@ch8/random';

/** Returns a function yielding uniform floats in [0, 1), determined by `seed` (any safe integer). */
export function seededRandom(seed: number): () => number {
  return uniform01(mix32((seed >>> 0) ^ mix32(Math.floor(seed / 0x100000000) >>> 0) ^ 0x9e3779b9));
}
