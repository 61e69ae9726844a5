/**
 * Transport security for every server and client the kit makes: TLS, and mutual TLS, from PEM files.
 *
 * `loadTls` reads and checks the files once (a missing or unreadable file, something that is not a PEM certificate or
 * key, a key that does not belong to the certificate, a certificate outside its validity: an error naming the setting
 * and the file), so a bad setting fails the start instead of the first handshake. `serverCredentials` and
 * `channelCredentials` turn the result into grpc-js credentials; nothing outside the kit touches them.
 *
 * A process sets its transport once (`useTransport`, from main.ts): servers created afterwards serve TLS with it,
 * clients and probes created afterwards (in this thread or in worker threads started afterwards) dial with it.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { getEnvironmentData, setEnvironmentData } from 'node:worker_threads';
import * as grpc from '@grpc/grpc-js';
import { InvalidInputError } from '@ch8/errors';
import type { FieldSpec } from './config.ts';

/** PEM material of one side of a connection, checked. */
export interface Tls {
  /**
   * CA certificates (PEM, one or more): a server verifies client certificates against them (mutual TLS), a client
   * the server's certificate (absent: the system's roots).
   */
  ca?: Buffer;
  /** This side's certificate chain (PEM): a server's always, a client's under mutual TLS. */
  cert?: Buffer;
  /** The private key of `cert` (PEM, unencrypted). */
  key?: Buffer;
  /** A server refuses clients without a certificate signed by `ca` (mutual TLS). */
  requireClientCert: boolean;
  /** The files the material came from, for logs. */
  files: { ca?: string; cert?: string; key?: string };
}

export interface TlsFiles {
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
  /** Servers: require and verify a client certificate. */
  requireClientCert?: boolean;
}

/** How each input is called in errors: the environment variables (default) or the CLI's flags. */
export interface TlsNames {
  ca: string;
  cert: string;
  key: string;
  clientAuth: string;
}

export const TLS_ENV_NAMES: TlsNames = {
  ca: 'CH8_TLS_CA',
  cert: 'CH8_TLS_CERT',
  key: 'CH8_TLS_KEY',
  clientAuth: 'CH8_TLS_CLIENT_AUTH',
};

/** The TLS settings every service reads (spread into its config spec); `tlsFromConfig` turns them into `Tls`. */
export const tlsConfigSpec = {
  tlsCa: {
    env: 'CH8_TLS_CA',
    kind: 'string',
    default: '',
    doc: 'PEM file of the CA(s) that sign certificates: verifies the services this one calls, and clients under CH8_TLS_CLIENT_AUTH=require',
  },
  tlsCert: {
    env: 'CH8_TLS_CERT',
    kind: 'string',
    default: '',
    doc: 'PEM certificate (chain) this service serves TLS with, and presents to the services it calls; with CH8_TLS_KEY; unset: plaintext',
  },
  tlsKey: { env: 'CH8_TLS_KEY', kind: 'string', default: '', doc: 'PEM private key of CH8_TLS_CERT (unencrypted)' },
  tlsClientAuth: {
    env: 'CH8_TLS_CLIENT_AUTH',
    kind: 'enum',
    values: ['none', 'require'] as const,
    default: 'none',
    doc: 'require: mutual TLS, callers must present a certificate signed by CH8_TLS_CA',
  },
} satisfies Record<string, FieldSpec>;

/** A service's TLS from its parsed settings: undefined (plaintext) when none is set. */
export function tlsFromConfig(c: {
  tlsCa: string;
  tlsCert: string;
  tlsKey: string;
  tlsClientAuth: 'none' | 'require';
}): Tls | undefined {
  const given = (s: string) => (s === '' ? undefined : s);
  return loadTls(
    {
      ca: given(c.tlsCa),
      cert: given(c.tlsCert),
      key: given(c.tlsKey),
      requireClientCert: c.tlsClientAuth === 'require',
    },
    { role: 'server' },
  );
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function read(file: string, field: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES'
          ? 'permission denied'
          : code === 'EISDIR'
            ? 'is a directory'
            : (e as Error).message;
    throw new InvalidInputError(`cannot read the TLS file: ${why}`, { field, file });
  }
}

function certificates(pem: Buffer, file: string, field: string): X509Certificate[] {
  const blocks = pem.toString('latin1').match(PEM_CERT) ?? [];
  if (blocks.length === 0)
    throw new InvalidInputError('not a PEM certificate (no BEGIN CERTIFICATE block)', { field, file });
  return blocks.map((b) => {
    try {
      return new X509Certificate(b);
    } catch (e) {
      throw new InvalidInputError(`not a valid PEM certificate: ${(e as Error).message}`, { field, file });
    }
  });
}

function checkValidity(cert: X509Certificate, file: string, field: string, now: number): void {
  if (Date.parse(cert.validTo) < now)
    throw new InvalidInputError(`the certificate ${cert.subject.replace(/\n/g, ', ')} expired on ${cert.validTo}`, {
      field,
      file,
    });
  if (Date.parse(cert.validFrom) > now)
    throw new InvalidInputError(`the certificate is not valid before ${cert.validFrom}`, { field, file });
}

/**
 * Reads and checks TLS files. Undefined when none is given (plaintext). `role: 'server'` needs a certificate and its
 * key; a client may give only a CA (server authentication) or also a certificate and key (mutual TLS).
 */
export function loadTls(
  files: TlsFiles,
  options: { role: 'server' | 'client'; names?: TlsNames; now?: number } = { role: 'client' },
): Tls | undefined {
  const names = options.names ?? TLS_ENV_NAMES;
  const now = options.now ?? Date.now();
  const { ca: caFile, cert: certFile, key: keyFile } = files;
  const requireClientCert = files.requireClientCert === true;
  if (caFile === undefined && certFile === undefined && keyFile === undefined) {
    if (requireClientCert)
      throw new InvalidInputError(
        `mutual TLS (${names.clientAuth}=require) needs ${names.cert}, ${names.key} and ${names.ca}`,
        { field: names.clientAuth },
      );
    return undefined;
  }
  if ((certFile === undefined) !== (keyFile === undefined)) {
    const [set, unset] = certFile === undefined ? [names.key, names.cert] : [names.cert, names.key];
    throw new InvalidInputError(`${set} is set but ${unset} is not: a certificate needs its key`, { field: unset });
  }
  if (options.role === 'server' && certFile === undefined)
    throw new InvalidInputError(`serving TLS needs ${names.cert} and ${names.key} (${names.ca} alone is not enough)`, {
      field: names.cert,
    });
  if (requireClientCert && caFile === undefined)
    throw new InvalidInputError(
      `mutual TLS (${names.clientAuth}=require) needs ${names.ca} to verify client certificates`,
      { field: names.ca },
    );
  const out: Tls = { requireClientCert, files: {} };
  if (caFile !== undefined) {
    out.ca = read(caFile, names.ca);
    for (const c of certificates(out.ca, caFile, names.ca)) checkValidity(c, caFile, names.ca, now);
    out.files.ca = caFile;
  }
  if (certFile !== undefined && keyFile !== undefined) {
    out.cert = read(certFile, names.cert);
    out.key = read(keyFile, names.key);
    const [leaf] = certificates(out.cert, certFile, names.cert);
    checkValidity(leaf!, certFile, names.cert, now);
    let key: KeyObject;
    try {
      key = createPrivateKey(out.key);
    } catch (e) {
      throw new InvalidInputError(`not a usable PEM private key (unencrypted): ${(e as Error).message}`, {
        field: names.key,
        file: keyFile,
      });
    }
    if (!leaf!.checkPrivateKey(key))
      throw new InvalidInputError(`the key does not match the certificate in ${certFile} (${names.cert})`, {
        field: names.key,
        file: keyFile,
      });
    out.files.cert = certFile;
    out.files.key = keyFile;
  }
  return out;
}

/** grpc-js server credentials: TLS with `tls`, plaintext without. */
export function serverCredentials(tls: Tls | undefined): grpc.ServerCredentials {
  if (tls === undefined) return grpc.ServerCredentials.createInsecure();
  if (tls.cert === undefined || tls.key === undefined)
    throw new InvalidInputError('serving TLS needs a certificate and its key', { field: TLS_ENV_NAMES.cert });
  return grpc.ServerCredentials.createSsl(
    tls.ca ?? null,
    [{ cert_chain: tls.cert, private_key: tls.key }],
    tls.requireClientCert,
  );
}

/** grpc-js channel credentials: TLS (with a client certificate when `tls` has one) or plaintext. */
export function channelCredentials(tls: Tls | undefined): grpc.ChannelCredentials {
  if (tls === undefined) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null);
}

// --- The process's transport -------------------------------------------------------------------------------------

const ENV_KEY = '@ch8/service-kit/client-tls';
let clientTlsSet = false;
let clientTls: Tls | undefined;

/** Buffers come back from a worker thread's environment data as plain Uint8Arrays. */
function revive(t: Tls): Tls {
  const b = (x: Uint8Array | undefined) => (x === undefined ? undefined : Buffer.from(x));
  const out: Tls = { requireClientCert: t.requireClientCert, files: { ...t.files } };
  const ca = b(t.ca);
  const cert = b(t.cert);
  const key = b(t.key);
  if (ca) out.ca = ca;
  if (cert) out.cert = cert;
  if (key) out.key = key;
  return out;
}

/**
 * Sets how clients and probes of this process dial when they are not told (`ClientOptions.tls`): TLS with `tls`,
 * plaintext with undefined. Worker threads started afterwards inherit it. A service's main.ts calls it with its own
 * settings, the CLI with its --tls-* flags.
 */
export function useClientTls(tls: Tls | undefined): void {
  clientTlsSet = true;
  clientTls = tls;
  setEnvironmentData(ENV_KEY, (tls ?? null) as never);
}

/** The TLS clients dial with by default: what `useClientTls` set here or in the thread that started this one. */
export function defaultClientTls(): Tls | undefined {
  if (clientTlsSet) return clientTls;
  const inherited = getEnvironmentData(ENV_KEY) as Tls | null | undefined;
  clientTlsSet = true;
  clientTls = inherited === null || inherited === undefined ? undefined : revive(inherited);
  return clientTls;
}
