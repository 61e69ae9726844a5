/** Argument reading shared by the model benchmarks: `--flag value` pairs, and a checked list of zoo models. */
import { MODEL_KINDS, isModelKind, type ModelKind } from '@ch8/models/config';

/**
 * Calls `on(flag, value)` for every argument; `value()` takes the next word (an error if there is none).
 * `on` returns false for a flag it does not know, which is an error.
 */
export function readArgs(argv: readonly string[], on: (flag: string, value: () => string) => boolean): void {
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    if (!on(flag, value)) throw new Error(`unknown argument ${flag}`);
  }
}

/** A comma-separated list of model kinds, each checked. */
export function modelList(v: string): ModelKind[] {
  return v.split(',').map((m) => {
    if (!isModelKind(m)) throw new Error(`unknown model ${m}; one of ${MODEL_KINDS.join(', ')}`);
    return m;
  });
}
