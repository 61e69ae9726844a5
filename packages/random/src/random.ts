/**
 * The one seeded pseudo-random generator of the project (mulberry32): shuffles, splits, initial weights, dropout
 * masks and test fixtures are all reproducible from a seed on every machine and backend.
 */

/** One step of mulberry32: advances `state` (uint32) and returns the new state and a uniform uint32. */
function step(state: number): [next: number, value: number] {
  const next = (state + 0x6d2b79f5) >>> 0;
  let t = next;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return [next, (t ^ (t >>> 14)) >>> 0];
}

/** Uniform uint32s from a raw 32-bit start state (callers that want seed hashing do it before). */
export function mulberry32(state: number): () => number {
  let s = state >>> 0;
  return () => {
    const [next, value] = step(s);
    s = next;
    return value;
  };
}

/** Uniform floats in [0, 1) from a raw 32-bit start state. */
export function uniform01(state: number): () => number {
  const next = mulberry32(state);
  return () => next() / 4294967296;
}

/** A 32-bit avalanche hash (murmur3's finalizer): turns nearby seeds into unrelated start states. */
export function mix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Fisher-Yates shuffle in place. */
export function shuffleInPlace<A extends { length: number; [i: number]: T }, T>(a: A, random: () => number): A {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const x = a[i] as T;
    a[i] = a[j] as T;
    a[j] = x;
  }
  return a;
}
