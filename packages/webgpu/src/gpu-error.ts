/**
 * A GPU validation or device error reported by Dawn (an invalid shader, an invalid pipeline, a lost device).
 *
 * WebGPU reports these asynchronously and, left alone, only prints them: the failed dispatch leaves its output
 * buffer untouched and the program reads back zeros or stale data. `@ch8/webgpu/setup` collects them and throws
 * this error from the next `await tensor.data()` (and from `checkGpuErrors()`), so a broken kernel fails loudly.
 * It is a bug in a kernel or in the GPU stack, not bad input: services map it to INTERNAL.
 */
export class GpuValidationError extends Error {
  override readonly name = 'GpuValidationError' as const;
  /** Every error message collected since the previous check, oldest first. */
  readonly errors: readonly string[];

  constructor(errors: readonly string[]) {
    const first = errors[0] ?? 'unknown GPU error';
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more GPU error(s))` : '';
    super(`WebGPU error: ${first}${more}`);
    this.errors = [...errors];
  }
}

export function isGpuValidationError(e: unknown): e is GpuValidationError {
  return e instanceof GpuValidationError;
}
