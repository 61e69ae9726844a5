import { checkHealth } from '@ch8/service-kit/probes';
import { setTimeout as sleep } from 'node:timers/promises';
import { bool } from '../args.ts';
import type { Command } from '../command.ts';
import { SERVICE_NAMES, startStack } from '../launch.ts';

/** The main job on the built-in default data: brings the stack up, checks it, and stops it again. */
export const demoCommand: Command = {
  name: 'demo',
  summary: 'start the four services on free loopback ports, wait until all are SERVING, report, stop them',
  problems: [],
  usage: 'ch8 demo [--json] [--keep]',
  flags: {
    json: { type: 'boolean', help: 'one JSON document on standard output' },
    keep: { type: 'boolean', help: 'leave the stack running until Ctrl-C' },
  },
  async run(args, io) {
    const t0 = Date.now();
    const stack = await startStack({ CH8_LOG_LEVEL: 'warn' });
    try {
      io.log(`starting ${SERVICE_NAMES.map((n) => `${n}@${stack.services[n].address}`).join(', ')}`);
      const status: Record<string, string> = {};
      await Promise.all(
        SERVICE_NAMES.map(async (n) => {
          const end = Date.now() + 60_000;
          let s = 'UNREACHABLE';
          while (Date.now() < end && (s = await checkHealth(stack.services[n].address, '', 1000)) !== 'SERVING') await sleep(200);
          status[n] = s;
          io.log(`${n} ${s}`);
        }),
      );
      const ok = SERVICE_NAMES.every((n) => status[n] === 'SERVING');
      const result = {
        ok,
        seconds: (Date.now() - t0) / 1000,
        services: SERVICE_NAMES.map((n) => ({ service: n, address: stack.services[n].address, status: status[n] })),
      };
      io.result(result, (r: typeof result) =>
        [...r.services.map((s) => `${s.service.padEnd(10)} ${s.address.padEnd(18)} ${s.status}`), `stack ${r.ok ? 'healthy' : 'NOT healthy'} in ${r.seconds.toFixed(1)} s`].join('\n'),
      );
      if (bool(args, 'keep') && ok) {
        io.log('stack running; Ctrl-C stops it');
        await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
      }
      return ok ? 0 : 1;
    } finally {
      await stack.stop();
    }
  },
};
