/**
 * `ch8 serve`: runs the gateway alone on a model repository, in the foreground, until SIGINT/SIGTERM. The gateway
 * is its own process (services/gateway/src/main.ts, started as `ch8 chapter` starts the stack): the CLI depends on
 * libraries, never on a service's code. Its JSON logs pass through to standard error; where it listens is said
 * there in plain words once it is up.
 */
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { InvalidInputError } from '@ch8/errors';
import { str } from '../args.ts';
import type { Command } from '../command.ts';
import { ROOT } from '../launch.ts';
import { DEFAULT_ADDRESSES } from '../stack.ts';

export interface ServeResult {
  address: string;
  metrics_url: string;
  models: string;
  exit_code: number | null;
  signal: string | null;
}

const BACKENDS = ['auto', 'tfjs-node-gpu', 'tfjs-node', 'webgpu', 'wasm', 'cpu'];

export const serveCommand: Command = {
  name: 'serve',
  summary: 'run the gateway on a model repository (text API + Open Inference Protocol) until Ctrl-C',
  problems: [],
  usage:
    'ch8 serve --models DIR [--addr HOST:PORT] [--backend NAME] [--workers N] [--metrics-addr HOST:PORT|off] [--default-model NAME] [--poll-ms N] [--tls-cert FILE --tls-key FILE [--tls-ca FILE] [--tls-client-auth require]]',
  flags: {
    models: { type: 'string', help: 'model repository <DIR>/<name>/<version>/ (e.g. what ch8 train --models wrote)' },
    addr: { type: 'string', help: 'HOST:PORT to listen on (default $CH8_GATEWAY_ADDR or 127.0.0.1:50054)' },
    backend: { type: 'string', help: `compute backend: ${BACKENDS.join(', ')} (default $CH8_BACKEND or auto)` },
    workers: {
      type: 'string',
      help: 'serving processes sharing the port, each with every model (default $CH8_GATEWAY_WORKERS or 1; 2 uses both cores of a 2-core machine)',
    },
    'metrics-addr': {
      type: 'string',
      help: 'HOST:PORT of the Prometheus /metrics endpoint, or off (default 127.0.0.1:9464)',
    },
    'default-model': { type: 'string', help: 'model answering requests that name none (default: the only one)' },
    'poll-ms': { type: 'string', help: 'how often the repository is scanned for new versions (default 2000)' },
    'tls-cert': { type: 'string', help: 'PEM certificate to serve TLS with (default $CH8_TLS_CERT; none: plaintext)' },
    'tls-key': { type: 'string', help: 'PEM private key of --tls-cert (default $CH8_TLS_KEY)' },
    'tls-ca': { type: 'string', help: 'PEM CA that signs client certificates (default $CH8_TLS_CA)' },
    'tls-client-auth': {
      type: 'string',
      help: 'require: mutual TLS, clients need a certificate signed by --tls-ca (default $CH8_TLS_CLIENT_AUTH or none)',
    },
    json: { type: 'boolean', help: 'one JSON document on standard output when the gateway stops' },
  },
  async run(args, io) {
    const models = str(args, 'models');
    if (models === undefined) throw new InvalidInputError('--models DIR is required', { field: 'models' });
    const backend = str(args, 'backend');
    if (backend !== undefined && !BACKENDS.includes(backend)) {
      throw new InvalidInputError(`unknown backend ${JSON.stringify(backend)}; one of ${BACKENDS.join(', ')}`, {
        field: 'backend',
      });
    }
    const repository = resolve(io.cwd, models);
    const env: Record<string, string> = {
      CH8_MODEL_REPOSITORY: repository,
      CH8_GATEWAY_ADDR: str(args, 'addr') ?? io.env['CH8_GATEWAY_ADDR'] ?? DEFAULT_ADDRESSES.gateway,
    };
    const optional: [string, string][] = [
      ['backend', 'CH8_BACKEND'],
      ['workers', 'CH8_GATEWAY_WORKERS'],
      ['metrics-addr', 'CH8_GATEWAY_METRICS_ADDR'],
      ['default-model', 'CH8_GATEWAY_DEFAULT_MODEL'],
      ['poll-ms', 'CH8_GATEWAY_POLL_MS'],
    ];
    for (const [flag, variable] of optional) {
      const v = str(args, flag);
      if (v !== undefined) env[variable] = v;
    }
    // TLS files as the gateway reads them (CH8_TLS_*), relative to where the command was typed; it checks them.
    const tlsFiles: [string, string][] = [
      ['tls-cert', 'CH8_TLS_CERT'],
      ['tls-key', 'CH8_TLS_KEY'],
      ['tls-ca', 'CH8_TLS_CA'],
    ];
    for (const [flag, variable] of tlsFiles) {
      const v = str(args, flag);
      if (v !== undefined) env[variable] = resolve(io.cwd, v);
    }
    const clientAuth = str(args, 'tls-client-auth');
    if (clientAuth !== undefined) env['CH8_TLS_CLIENT_AUTH'] = clientAuth;
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'services', 'gateway', 'src', 'main.ts')], {
      cwd: ROOT,
      env: { ...io.env, ...env },
      stdio: ['ignore', 'inherit', 'pipe'],
    });
    const forward = (signal: NodeJS.Signals) => () => {
      if (child.exitCode === null) child.kill(signal);
    };
    const onInt = forward('SIGINT');
    const onTerm = forward('SIGTERM');
    const onExit = forward('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    process.on('exit', onExit);
    const result: ServeResult = {
      address: env['CH8_GATEWAY_ADDR']!,
      metrics_url: '',
      models: repository,
      exit_code: null,
      signal: null,
    };
    const lines = createInterface({ input: child.stderr! });
    const said = new Set<string>();
    lines.on('line', (line) => {
      io.log(line);
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line);
      } catch {
        return;
      }
      // With --workers N every serving process logs its own 'listening' and 'gateway ready' (they listen together,
      // once all have loaded): each is said once.
      if (record['msg'] === 'listening' && typeof record['address'] === 'string') {
        if (said.has('listening')) return;
        said.add('listening');
        result.address = record['address'];
        io.log(`ch8 serve: gateway listening on ${result.address} (models ${repository})`);
      } else if (record['msg'] === 'metrics listening' && typeof record['url'] === 'string') {
        result.metrics_url = record['url'];
        io.log(`ch8 serve: metrics on ${result.metrics_url}`);
      } else if (record['msg'] === 'metrics endpoint could not start; serving without metrics') {
        const err = record['err'] as { message?: string } | undefined;
        io.log(`ch8 serve: no metrics endpoint on ${String(record['address'])}: ${err?.message ?? 'unknown error'}`);
      } else if (record['msg'] === 'gateway ready') {
        if (said.has('ready')) return;
        said.add('ready');
        const names = Array.isArray(record['models']) ? (record['models'] as string[]) : [];
        io.log(
          `ch8 serve: ready on ${result.address} with ${names.length > 0 ? names.join(', ') : 'no model yet (it polls for new versions)'}; Ctrl-C stops it`,
        );
      }
    });
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((done) =>
      child.once('exit', (c, s) => done([c, s])),
    );
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    process.off('exit', onExit);
    result.exit_code = code;
    result.signal = signal;
    io.result(
      result,
      (r: ServeResult) => `gateway stopped (${r.signal !== null ? `signal ${r.signal}` : `exit code ${r.exit_code}`})`,
    );
    return code === 0 ? 0 : 1;
  },
};
