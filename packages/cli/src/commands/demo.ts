import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkHealth } from '@ch8/service-kit/probes';
import { bool, parseArgs, str } from '../args.ts';
import type { Command, CommandIO } from '../command.ts';
import { SERVICE_NAMES, startStack } from '../launch.ts';
import { modelFlag, trainCommand, type TrainReport } from './train.ts';

interface DemoResult {
  ok: boolean;
  seconds: number;
  services: Array<{ service: string; address: string; status: string }>;
  /** The model trained in-process on the builtin review sets (null when the stack was not healthy). */
  training: {
    model: string;
    backend: string;
    device: string;
    epochs: number;
    dev_accuracy: number | null;
    model_dir: string | null;
    seconds: number;
  } | null;
}

/** Runs `ch8 train` with `argv`, its logs going to `io`, and returns its report instead of printing it. */
async function trainQuietly(argv: string[], io: CommandIO): Promise<TrainReport> {
  let report: TrainReport | undefined;
  const sub: CommandIO = { ...io, json: true, result: (v) => void (report = v as TrainReport) };
  const code = await trainCommand.run(parseArgs(argv, trainCommand.flags), sub);
  if (code !== 0 || report === undefined) throw new Error(`training exited with ${code}`);
  return report;
}

/**
 * The main job on the built-in default data: brings the stack up and checks it, trains a model on the builtin
 * review sets (in-process, as `ch8 train` does, until the trainer service trains) and exports it, stops the stack.
 */
export const demoCommand: Command = {
  name: 'demo',
  summary: 'start the four services, wait until all are SERVING, train and export a model on the builtin data, stop',
  problems: [],
  usage: 'ch8 demo [--model bow-frozen] [--models DIR] [--json] [--keep]',
  flags: {
    model: { type: 'string', help: 'the model to train (default bow-frozen; any of ch8 train --model)' },
    models: {
      type: 'string',
      help: 'model repository to export into (default .cache/demo/models; each run adds a version)',
    },
    json: { type: 'boolean', help: 'one JSON document on standard output' },
    keep: { type: 'boolean', help: 'leave the stack running until Ctrl-C' },
  },
  async run(args, io) {
    const t0 = Date.now();
    const model = modelFlag(args);
    const out = resolve(io.cwd, str(args, 'models') ?? '.cache/demo/models');
    const stack = await startStack({ CH8_LOG_LEVEL: 'warn' });
    try {
      io.log(`starting ${SERVICE_NAMES.map((n) => `${n}@${stack.services[n].address}`).join(', ')}`);
      const status: Record<string, string> = {};
      await Promise.all(
        SERVICE_NAMES.map(async (n) => {
          const end = Date.now() + 60_000;
          let s = 'UNREACHABLE';
          while (Date.now() < end && (s = await checkHealth(stack.services[n].address, '', 1000)) !== 'SERVING')
            await sleep(200);
          status[n] = s;
          io.log(`${n} ${s}`);
        }),
      );
      const healthy = SERVICE_NAMES.every((n) => status[n] === 'SERVING');
      let training: DemoResult['training'] = null;
      if (healthy) {
        const t = await trainQuietly(['--model', model, '--epochs', '3', '--models', out], io);
        training = {
          model: t.model,
          backend: t.backend,
          device: t.device,
          epochs: t.epochs.length,
          dev_accuracy: t.dev_accuracy,
          model_dir: t.model_dir,
          seconds: t.seconds,
        };
      }
      const result: DemoResult = {
        ok: healthy && training !== null,
        seconds: (Date.now() - t0) / 1000,
        services: SERVICE_NAMES.map((n) => ({ service: n, address: stack.services[n].address, status: status[n]! })),
        training,
      };
      io.result(result, (r: DemoResult) =>
        [
          ...r.services.map((s) => `${s.service.padEnd(10)} ${s.address.padEnd(18)} ${s.status}`),
          r.training === null
            ? 'no model trained: the stack is not healthy'
            : `trained ${r.training.model} on ${r.training.backend} for ${r.training.epochs} epochs: dev accuracy ${r.training.dev_accuracy?.toFixed(4)}, exported to ${r.training.model_dir}`,
          `${r.ok ? 'ok' : 'FAILED'} in ${r.seconds.toFixed(1)} s`,
        ].join('\n'),
      );
      if (bool(args, 'keep') && healthy) {
        io.log('stack running; Ctrl-C stops it');
        await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
      }
      return result.ok ? 0 : 1;
    } finally {
      await stack.stop();
    }
  },
};
