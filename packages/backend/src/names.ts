/**
 * The compute backends by name, best first, without loading tfjs: configuration parsing (a service's main thread,
 * the CLI's flag checks) can validate a backend name without paying tfjs's start-up.
 */
export const BACKENDS = ['tfjs-node-gpu', 'tfjs-node', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];
export type BackendPreference = 'auto' | BackendName;
