/**
 * Run as a child process by `probeHardwareGpu` (chapter-gpu.ts): is there a hardware WebGPU adapter? Prints one
 * JSON line `{ "gpu": boolean, "device"?: string, "reason"?: string }`. A child, so that the native drivers' own
 * console output (Dawn, Vulkan, EGL) never reaches the CLI's output, and tfjs is not loaded into the CLI.
 */
import { selectBackend } from '@ch8/backend/select';

let line: string;
try {
  const info = await selectBackend({ prefer: 'webgpu', allowSoftwareGpu: false });
  line = JSON.stringify({ gpu: true, device: info.device });
} catch (e) {
  line = JSON.stringify({ gpu: false, reason: (e as Error).message });
}
process.stdout.write(`${line}\n`, () => process.exit(0));
