/**
 * Typed gRPC clients from protobuf-es service descriptors: promises for unary calls, async iterables for streams,
 * deadlines and cancellation, failures as GrpcError (with the status code).
 */
import * as grpc from '@grpc/grpc-js';
import {
  create,
  type DescMessage,
  type DescService,
  type MessageInitShape,
  type MessageShape,
} from '@bufbuild/protobuf';
import { methodDefinition } from './descriptors.ts';
import { Code, GrpcError } from './status.ts';
import { channelCredentials, defaultClientTls, type Tls } from './tls.ts';

export interface CallOptions {
  /** Relative deadline in ms. */
  timeoutMs?: number;
  signal?: AbortSignal;
  metadata?: Record<string, string>;
}

type In<M> = M extends { input: infer I extends DescMessage } ? MessageInitShape<I> : never;
type Out<M> = M extends { output: infer O extends DescMessage } ? MessageShape<O> : never;

export type ClientMethod<M> = M extends { methodKind: 'unary' }
  ? (request: In<M>, options?: CallOptions) => Promise<Out<M>>
  : M extends { methodKind: 'server_streaming' }
    ? (request: In<M>, options?: CallOptions) => AsyncIterable<Out<M>>
    : M extends { methodKind: 'client_streaming' }
      ? (requests: AsyncIterable<In<M>> | Iterable<In<M>>, options?: CallOptions) => Promise<Out<M>>
      : M extends { methodKind: 'bidi_streaming' }
        ? (requests: AsyncIterable<In<M>> | Iterable<In<M>>, options?: CallOptions) => AsyncIterable<Out<M>>
        : never;

export type Client<S extends DescService> = { [K in keyof S['method']]: ClientMethod<S['method'][K]> } & {
  close(): void;
  /** Resolves once connected, or rejects after timeoutMs. */
  waitForReady(timeoutMs: number): Promise<void>;
};

export interface ClientOptions {
  maxMessageBytes?: number;
  /**
   * Dial with TLS (a client certificate too when it has one: mutual TLS); explicitly undefined: plaintext. Default:
   * the process's (`useClientTls` / `useTransport`), plaintext when none was set.
   */
  tls?: Tls | undefined;
  channelOptions?: grpc.ChannelOptions;
}

function toGrpcError(e: unknown): GrpcError {
  const se = e as Partial<grpc.ServiceError>;
  if (typeof se?.code === 'number') return new GrpcError(se.code as Code, se.details ?? se.message ?? '', { cause: e });
  return new GrpcError(Code.UNKNOWN, e instanceof Error ? e.message : String(e), { cause: e });
}

function callOptions(o?: CallOptions): { md: grpc.Metadata; opts: grpc.CallOptions } {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(o?.metadata ?? {})) md.set(k, v);
  const opts: grpc.CallOptions = {};
  if (o?.timeoutMs !== undefined) opts.deadline = Date.now() + o.timeoutMs;
  return { md, opts };
}

function bindAbort(call: grpc.Call, signal?: AbortSignal) {
  if (!signal) return;
  if (signal.aborted) call.cancel();
  else signal.addEventListener('abort', () => call.cancel(), { once: true });
}

async function pump<T>(
  source: AsyncIterable<T> | Iterable<T>,
  sink: grpc.ClientWritableStream<unknown>,
  schema: DescMessage,
) {
  try {
    for await (const item of source) {
      if (!sink.write(create(schema, item as never))) await new Promise((r) => sink.once('drain', r));
    }
    sink.end();
  } catch (e) {
    sink.destroy(e instanceof Error ? e : new Error(String(e)));
  }
}

async function* iterate<T>(stream: grpc.ClientReadableStream<unknown>): AsyncIterable<T> {
  try {
    for await (const item of stream) yield item as T;
  } catch (e) {
    throw toGrpcError(e);
  } finally {
    // Leaving the loop early (break, return) cancels the call.
    stream.cancel();
  }
}

export function createClient<S extends DescService>(
  service: S,
  address: string,
  options: ClientOptions = {},
): Client<S> {
  const maxBytes = options.maxMessageBytes ?? 64 * 1024 * 1024;
  const tls = 'tls' in options ? options.tls : defaultClientTls();
  const channel = new grpc.Client(address, channelCredentials(tls), {
    'grpc.max_receive_message_length': maxBytes,
    'grpc.max_send_message_length': maxBytes,
    ...options.channelOptions,
  });
  const out: Record<string, unknown> = {
    close: () => channel.close(),
    waitForReady: (timeoutMs: number) =>
      new Promise<void>((resolve, reject) =>
        channel.waitForReady(Date.now() + timeoutMs, (err) =>
          err ? reject(toGrpcError({ code: Code.UNAVAILABLE, details: err.message })) : resolve(),
        ),
      ),
  };
  for (const method of service.methods) {
    const def = methodDefinition(method);
    const ser = def.requestSerialize as (v: unknown) => Buffer;
    const de = def.responseDeserialize as (b: Buffer) => unknown;
    const input = method.input;
    switch (method.methodKind) {
      case 'unary':
        out[method.localName] = (req: unknown, o?: CallOptions) =>
          new Promise((resolve, reject) => {
            const { md, opts } = callOptions(o);
            const call = channel.makeUnaryRequest(
              def.path,
              ser,
              de,
              create(input, req as never),
              md,
              opts,
              (err, res) => (err ? reject(toGrpcError(err)) : resolve(res)),
            );
            bindAbort(call, o?.signal);
          });
        break;
      case 'server_streaming':
        out[method.localName] = (req: unknown, o?: CallOptions) => {
          const { md, opts } = callOptions(o);
          const call = channel.makeServerStreamRequest(def.path, ser, de, create(input, req as never), md, opts);
          bindAbort(call, o?.signal);
          return iterate(call);
        };
        break;
      case 'client_streaming':
        out[method.localName] = (reqs: AsyncIterable<unknown>, o?: CallOptions) =>
          new Promise((resolve, reject) => {
            const { md, opts } = callOptions(o);
            const call = channel.makeClientStreamRequest(def.path, ser, de, md, opts, (err, res) =>
              err ? reject(toGrpcError(err)) : resolve(res),
            );
            bindAbort(call, o?.signal);
            void pump(reqs, call, input);
          });
        break;
      case 'bidi_streaming':
        out[method.localName] = (reqs: AsyncIterable<unknown>, o?: CallOptions) => {
          const { md, opts } = callOptions(o);
          const call = channel.makeBidiStreamRequest(def.path, ser, de, md, opts);
          bindAbort(call, o?.signal);
          void pump(reqs, call as unknown as grpc.ClientWritableStream<unknown>, input);
          return iterate(call as unknown as grpc.ClientReadableStream<unknown>);
        };
        break;
    }
  }
  return out as Client<S>;
}
