/**
 * A lean gRPC unary caller for load generators: node:http2 directly, request messages encoded once by the caller,
 * no interceptors, no per-call deadline timers and no response decoding unless asked. It speaks the same wire
 * protocol as any gRPC client (length-prefixed messages, `grpc-status` in the trailers), so the server cannot
 * tell it from @grpc/grpc-js; it exists so that the load generator's own CPU per call is small and more of the
 * shared cores go to the server being measured.
 */
import { connect, constants, type ClientHttp2Session } from 'node:http2';

/** PEM material for a TLS connection (a client certificate too for mutual TLS). */
export interface H2Tls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

export class GrpcCallError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(`gRPC status ${code}: ${details}`);
    this.name = 'GrpcCallError';
  }
}

/** The 5-byte gRPC frame header (uncompressed, big-endian length) followed by the message. */
export function frame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/** Splits a response body into its messages (normally one for a unary call). */
export function unframe(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at + 5 <= body.length) {
    if (body[at] !== 0) throw new Error('compressed gRPC messages are not supported by this caller');
    const n = body.readUInt32BE(at + 1);
    if (at + 5 + n > body.length) throw new Error(`truncated gRPC message: ${n} bytes announced`);
    out.push(body.subarray(at + 5, at + 5 + n));
    at += 5 + n;
  }
  if (at !== body.length) throw new Error('trailing bytes after the last gRPC message');
  return out;
}

export class H2UnaryCaller {
  private readonly sessions: (ClientHttp2Session | undefined)[];
  private next = 0;
  private closed = false;

  /**
   * With `tls`, the connection is TLS (h2 over ALPN), as a gRPC channel with TLS credentials makes it. With
   * `connections` > 1, that many connections, the calls taking them in turn (as a client pool or a load balancer
   * spreads calls; a server with several processes on one port gets each connection on one of them).
   */
  constructor(
    private readonly address: string,
    private readonly tls?: H2Tls,
    connections = 1,
  ) {
    if (!Number.isInteger(connections) || connections < 1) throw new Error(`connections must be >= 1: ${connections}`);
    this.sessions = new Array<ClientHttp2Session | undefined>(connections).fill(undefined);
  }

  /** The next connection, opened on first use and again after the server went away (as a gRPC channel would). */
  private open(): ClientHttp2Session {
    if (this.closed) throw new Error('the caller is closed');
    const i = this.next;
    this.next = (i + 1) % this.sessions.length;
    let session = this.sessions[i];
    if (session === undefined || session.closed || session.destroyed) {
      session =
        this.tls === undefined
          ? connect(`http://${this.address}`)
          : connect(`https://${this.address}`, { ...this.tls, ALPNProtocols: ['h2'] });
      session.on('error', () => {}); // surfaced per call as stream errors
      this.sessions[i] = session;
    }
    return session;
  }

  /** One unary call: `framed` is `frame(toBinary(schema, request))`; resolves to the response message bytes. */
  call(path: string, framed: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const stream = this.open().request({
        [constants.HTTP2_HEADER_METHOD]: 'POST',
        [constants.HTTP2_HEADER_PATH]: path,
        [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
        te: 'trailers',
      });
      const chunks: Buffer[] = [];
      let status: number | undefined;
      let details = '';
      const take = (h: Record<string, unknown>) => {
        if (h['grpc-status'] !== undefined) {
          status = Number(h['grpc-status']);
          details = decodeURIComponent(String(h['grpc-message'] ?? ''));
        }
      };
      stream.on('response', take); // a trailers-only answer carries the status in the headers
      stream.on('trailers', take);
      stream.on('data', (d: Buffer) => chunks.push(d));
      stream.on('error', reject);
      stream.on('close', () => {
        if (status === undefined) return reject(new GrpcCallError(14, 'stream closed without grpc-status'));
        if (status !== 0) return reject(new GrpcCallError(status, details));
        try {
          const messages = unframe(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
          if (messages.length !== 1) throw new Error(`${messages.length} messages in a unary answer`);
          resolve(messages[0]!);
        } catch (e) {
          reject(e);
        }
      });
      stream.end(framed);
    });
  }

  close(): void {
    this.closed = true;
    for (const s of this.sessions) s?.close();
  }
}
