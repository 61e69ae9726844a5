/**
 * TLS for every command that talks to a running service: `--tls-ca`, `--tls-cert`, `--tls-key` (each defaulting to
 * CH8_TLS_CA, CH8_TLS_CERT, CH8_TLS_KEY, as the services read them). The files are read and checked before the
 * command runs (an error names the flag, or the variable, and the file); the command's clients and probes then dial
 * with them: TLS verified against the CA, mutual TLS when a certificate is given.
 */
import { resolve } from 'node:path';
import { defaultClientTls, loadTls, TLS_ENV_NAMES, useClientTls, type Tls } from '@ch8/service-kit/tls';
import type { Flags, Parsed } from './args.ts';
import { str } from './args.ts';
import type { Command } from './command.ts';

export const TLS_FLAGS: Flags = {
  'tls-ca': {
    type: 'string',
    help: "PEM CA that signed the services' certificates: talk TLS (default $CH8_TLS_CA)",
  },
  'tls-cert': {
    type: 'string',
    help: 'PEM client certificate, for services that require one (mutual TLS; default $CH8_TLS_CERT)',
  },
  'tls-key': { type: 'string', help: 'PEM private key of --tls-cert (default $CH8_TLS_KEY)' },
};

/**
 * The TLS a command dials with: each file from its flag, else from its variable (paths resolve against `cwd`);
 * undefined (plaintext) when none is given.
 */
export function clientTlsOf(args: Parsed, env: Record<string, string | undefined>, cwd: string): Tls | undefined {
  const pick = (flag: string, variable: string) => {
    const fromFlag = str(args, flag);
    const fromEnv = env[variable];
    if (fromFlag !== undefined) return { path: resolve(cwd, fromFlag), name: `--${flag}` };
    if (fromEnv !== undefined && fromEnv !== '') return { path: resolve(cwd, fromEnv), name: variable };
    return { path: undefined, name: `--${flag}` };
  };
  const ca = pick('tls-ca', TLS_ENV_NAMES.ca);
  const cert = pick('tls-cert', TLS_ENV_NAMES.cert);
  const key = pick('tls-key', TLS_ENV_NAMES.key);
  return loadTls(
    { ca: ca.path, cert: cert.path, key: key.path },
    { role: 'client', names: { ca: ca.name, cert: cert.name, key: key.name, clientAuth: TLS_ENV_NAMES.clientAuth } },
  );
}

/**
 * Commands that dial a running service: those with --addr (`serve` listens there instead and has TLS flags of its
 * own) and `health`. Not `chapter`: it dials the plaintext loopback stack it starts itself.
 */
export function talksToServices(command: Command): boolean {
  if (command.name === 'serve' || command.name === 'chapter') return false;
  return 'addr' in command.flags || command.name === 'health';
}

/** `command` with the TLS flags: its run dials with them (the process's default TLS while it runs). */
export function withTlsFlags(command: Command): Command {
  return {
    ...command,
    usage: `${command.usage} [--tls-ca FILE] [--tls-cert FILE --tls-key FILE]`,
    flags: { ...command.flags, ...TLS_FLAGS },
    async run(args, io) {
      const tls = clientTlsOf(args, io.env, io.cwd);
      const before = defaultClientTls();
      useClientTls(tls);
      try {
        return await command.run(args, io);
      } finally {
        useClientTls(before);
      }
    },
  };
}
