/**
 * A gRPC server built from protobuf-es service descriptors: typed handlers for the four call kinds, health
 * (grpc.health.v1) and reflection registered on every server, errors mapped to status codes in one place,
 * structured per-call logging, Prometheus metrics of every call (metrics.ts), TLS and mutual TLS (tls.ts), call
 * limits (message size, concurrent calls, default and longest deadline: transport.ts), a plaintext health-only port,
 * bounded buffering for server streams, graceful shutdown.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import type { ServerSurfaceCall } from '@grpc/grpc-js/build/src/server-call.js';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath, type ServingStatus } from 'grpc-health-check';
import {
  create,
  type DescMessage,
  type DescService,
  type MessageInitShape,
  type MessageShape,
} from '@bufbuild/protobuf';
import { fileDescriptorProtos, serviceDefinition } from './descriptors.ts';
import { createLogger, type Logger } from './logger.ts';
import { createRpcMetrics, createServiceMetrics, type RpcMetrics, type ServiceMetrics } from './metrics.ts';
import { Code, codeName, GrpcError, statusOf } from './status.ts';
import { serverCredentials, type Tls } from './tls.ts';
import { currentTransport, DEFAULT_LIMITS, type CallLimits } from './transport.ts';

export interface CallContext {
  /** Aborted when the client cancels, the deadline passes or the server shuts down hard. */
  readonly signal: AbortSignal;
  /** Whether `signal` is aborted, read without making the signal. */
  readonly aborted: boolean;
  /**
   * Runs `listener` once when the call is aborted (when `signal` aborts), never if it already was; returns the function
   * that removes it. The same as `signal.addEventListener('abort', ...)` for a hot path: no AbortController is made
   * for a call whose handler uses only this.
   */
  onAbort(listener: () => void): () => void;
  /**
   * Absolute deadline in ms since the epoch, or Infinity: the client's, or the server's default for a call without
   * one, cut to the server's longest (`CallLimits`).
   */
  readonly deadline: number;
  readonly requestId: string;
  readonly peer: string;
  readonly logger: Logger;
  /** Request metadata (lower-case keys, first value of each). */
  readonly metadata: Readonly<Record<string, string>>;
  /**
   * Sets one of the server's extra metric labels (`ServerOptions.metricLabels`) for this call, e.g. the model a
   * gateway call was for; a label never set is "". A name not declared there throws.
   */
  setMetricLabel(name: string, value: string): void;
}

type In<M> = M extends { input: infer I extends DescMessage } ? MessageShape<I> : never;
type Out<M> = M extends { output: infer O extends DescMessage } ? MessageInitShape<O> : never;

export type UnaryHandler<M> = (request: In<M>, ctx: CallContext) => Promise<Out<M>> | Out<M>;
export type ServerStreamHandler<M> = (request: In<M>, ctx: CallContext) => AsyncIterable<Out<M>>;
export type ClientStreamHandler<M> = (requests: AsyncIterable<In<M>>, ctx: CallContext) => Promise<Out<M>>;
export type BidiStreamHandler<M> = (requests: AsyncIterable<In<M>>, ctx: CallContext) => AsyncIterable<Out<M>>;

export type MethodHandler<M> = M extends { methodKind: 'unary' }
  ? UnaryHandler<M>
  : M extends { methodKind: 'server_streaming' }
    ? ServerStreamHandler<M>
    : M extends { methodKind: 'client_streaming' }
      ? ClientStreamHandler<M>
      : M extends { methodKind: 'bidi_streaming' }
        ? BidiStreamHandler<M>
        : never;

/** Handlers of a service, by the methods' local (camelCase) names. */
export type ServiceHandlers<S extends DescService> = { [K in keyof S['method']]: MethodHandler<S['method'][K]> };

export interface ServerOptions {
  /** Name used in logs (e.g. "embedding"). */
  name: string;
  logger?: Logger;
  /** Largest message accepted or sent, bytes. Default 64 MiB (`limits.maxMessageBytes` wins). */
  maxMessageBytes?: number;
  /**
   * Serve TLS with this (mutual TLS when it requires client certificates); explicitly undefined: plaintext. Default:
   * the process's transport (`useTransport`), plaintext when none was set.
   */
  tls?: Tls | undefined;
  /** Call limits; each field not given comes from the process's transport, else `DEFAULT_LIMITS` (none but 64 MiB). */
  limits?: Partial<CallLimits>;
  /**
   * HOST:PORT of a second, plaintext server that answers grpc.health.v1 only (the same statuses), for probes that
   * cannot speak TLS; '' for none. Default: the process's transport.
   */
  healthAddress?: string;
  /** Responses a server stream may have queued before the handler is paused. Default 8. */
  maxBufferedResponses?: number;
  /** Extra grpc-js channel options. */
  channelOptions?: grpc.ServerOptions;
  /**
   * Where the per-call metrics go (`ch8_<name>_requests_total`, ...; see metrics.ts). Default: a registry of this
   * server's own, named after `name`; serve it with `serveMetrics` / `startMetricsServer` from main.ts.
   */
  metrics?: ServiceMetrics;
  /** Labels the handlers add to the per-call metrics besides method and code (`CallContext.setMetricLabel`). */
  metricLabels?: readonly string[];
}

export type HealthStatus = ServingStatus;

export interface Ch8Server {
  /** Registers a service; it reports NOT_SERVING on health until `setServing(service, true)` or `ready()`. */
  add<S extends DescService>(service: S, handlers: ServiceHandlers<S>): this;
  /** Binds and starts. Returns the port (useful with port 0). */
  listen(address: string): Promise<number>;
  /** Sets one service's health status ("" is the server as a whole). */
  setStatus(service: string, status: HealthStatus): void;
  /** Marks the server ("" entry) and every added service SERVING, except those in `except`. */
  ready(except?: readonly string[]): void;
  /** Stops accepting calls, lets in-flight calls finish for up to graceMs, then cancels what is left. */
  shutdown(graceMs?: number): Promise<void>;
  /** Calls in flight now. */
  readonly inFlight: number;
  /** The server's metrics: per-call ones recorded by the kit, and whatever the service adds. */
  readonly metrics: ServiceMetrics;
  readonly logger: Logger;
  /** The underlying server, for the kit's tests. */
  readonly grpc: grpc.Server;
}

function metadataRecord(md: grpc.Metadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(md.getMap())) out[k] = Buffer.isBuffer(v) ? v.toString('base64') : String(v);
  return out;
}

function deadlineMs(d: grpc.Deadline): number {
  if (d instanceof Date) return d.getTime();
  return d;
}

/**
 * Async iterator over the requests of a client or bidi stream, honouring backpressure. The stream is not
 * destroyed when the requests end: a bidi call's response side must stay open to send the rest and the status.
 */
function readAll<T>(readable: Readable): AsyncIterable<T> {
  return readable.iterator({ destroyOnReturn: false }) as AsyncIterable<T>;
}

/** Loopback hosts: plaintext there is the default and not warned about. */
export function isLoopbackAddress(address: string): boolean {
  if (address.startsWith('unix:')) return true;
  const host = address
    .replace(/^(dns|ipv4|ipv6):(\/\/\/)?/, '')
    .replace(/:\d+$/, '')
    .replace(/^\[(.*)\]$/, '$1')
    .toLowerCase();
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host) || host === '::ffff:127.0.0.1';
}

/** Request metadata by which the admission interceptor hands a call's server-set deadline to its handler. */
const DEADLINE_KEY = 'x-ch8-server-deadline';

/** Health and reflection are never limited: a server at its limit still answers its probes. */
const UNLIMITED_PATH = /^\/grpc\.(health\.v1\.Health|reflection\.v1(alpha)?\.ServerReflection)\//;

/** `source`, calling `onItem` for each item it yields. */
async function* counted<T>(source: AsyncIterable<T>, onItem: () => void): AsyncIterable<T> {
  for await (const item of source) {
    onItem();
    yield item;
  }
}

/** The error object grpc-js answers a call with. */
function serviceError(code: Code, details: string): grpc.ServiceError {
  const err = new Error(details) as grpc.ServiceError;
  err.code = code;
  err.details = details;
  err.metadata = new grpc.Metadata();
  return err;
}

/** A unary answer that goes out at most once (a hard stop may have ended the call already). */
function answerOnce(callback: grpc.sendUnaryData<unknown>): grpc.sendUnaryData<unknown> {
  let sent = false;
  return (err, value) => {
    if (sent) return;
    sent = true;
    callback(err, value);
  };
}

/** What a call needs of its server. */
interface CallHost {
  readonly rpc: RpcMetrics<string>;
  readonly logger: Logger;
  /** The calls in flight, for a hard stop at the end of the grace period. */
  readonly live: Set<CallState>;
  readonly emptyLabels: Readonly<Record<string, string>>;
}

/**
 * One call: the context its handler gets, and the server's bookkeeping of it. `finish` once its answer is out,
 * `record` with its final status (the first code recorded counts: a call cancelled or past its deadline is counted as
 * such even if its handler ends later). What a handler may not read is made only when it is read (the signal's
 * AbortController, the metadata record, the request id, the child logger, the peer): most calls read none of it.
 */
class CallState implements CallContext {
  readonly deadline: number;
  readonly #host: CallHost;
  readonly #call: ServerSurfaceCall;
  readonly #name: string;
  readonly #method: string;
  readonly #t0 = performance.now();
  readonly #labels: Record<string, string>;
  #recorded = false;
  /** The answer is out: grpc-js reports 'cancelled' after every call, finished ones too, and those are not aborted. */
  #finished = false;
  #reason: GrpcError | undefined;
  #controller: AbortController | undefined;
  #listeners: (() => void)[] | undefined;
  #metadata: Record<string, string> | undefined;
  #requestId: string | undefined;
  #logger: Logger | undefined;
  #peer: string | undefined;
  /** Ends the call with a status of the server's (a hard stop), whatever its handler is doing. */
  #end: ((err: grpc.ServiceError) => void) | undefined;

  constructor(
    host: CallHost,
    call: ServerSurfaceCall,
    name: string,
    method: string,
    end: (err: grpc.ServiceError) => void,
  ) {
    this.#end = end;
    this.#host = host;
    this.#call = call;
    this.#name = name;
    this.#method = method;
    host.rpc.started(method);
    this.#labels = { ...host.emptyLabels };
    // The admission interceptor's deadline when it set one (the server's default, or its longest), else the client's.
    const imposed = call.metadata.get(DEADLINE_KEY);
    this.deadline = imposed.length > 0 ? Number(imposed[0]) : deadlineMs(call.getDeadline());
    host.live.add(this);
    call.on('cancelled', () => this.abort('call cancelled by the client or its deadline passed'));
    call.once('finish', () => this.finish());
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#reason !== undefined) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  get aborted(): boolean {
    return this.#reason !== undefined;
  }

  onAbort(listener: () => void): () => void {
    if (this.#reason !== undefined) return () => {};
    (this.#listeners ??= []).push(listener);
    return () => {
      const i = this.#listeners?.indexOf(listener) ?? -1;
      if (i >= 0) this.#listeners!.splice(i, 1);
    };
  }

  get requestId(): string {
    if (this.#requestId === undefined) {
      const given = this.#call.metadata.get('x-request-id');
      this.#requestId = given.length > 0 ? String(given[0]) : randomUUID();
    }
    return this.#requestId;
  }

  get peer(): string {
    return (this.#peer ??= this.#call.getPeer());
  }

  get logger(): Logger {
    return (this.#logger ??= this.#host.logger.child({ rpc: this.#name, request_id: this.requestId }));
  }

  get metadata(): Readonly<Record<string, string>> {
    if (this.#metadata === undefined) {
      this.#metadata = metadataRecord(this.#call.metadata);
      delete this.#metadata[DEADLINE_KEY];
    }
    return this.#metadata;
  }

  setMetricLabel(label: string, value: string): void {
    if (!(label in this.#labels)) throw new Error(`metric label ${JSON.stringify(label)} is not one of metricLabels`);
    this.#labels[label] = value;
  }

  record(code: Code): void {
    if (this.#recorded) return;
    this.#recorded = true;
    const seconds = (performance.now() - this.#t0) / 1000;
    this.#host.rpc.finished({ ...this.#labels, method: this.#method, code: codeName(code) }, seconds);
  }

  finish(): void {
    this.#finished = true;
    this.#host.live.delete(this);
  }

  /**
   * A hard stop: aborts the handler and ends the call with CANCELLED at once, without waiting for the handler or
   * relying on grpc-js to drop the connection (its forced shutdown closes connections only where its channelz
   * bookkeeping is on, which `channelOptions` may turn off).
   */
  stop(why: string): void {
    if (this.#finished) return;
    const end = this.#end;
    this.#end = undefined;
    this.abort(why);
    end?.(serviceError(Code.CANCELLED, why));
  }

  /** Aborts the handler's signal (once, and not after the answer is out), recording CANCELLED or DEADLINE_EXCEEDED. */
  abort(why: string): void {
    if (this.#finished || this.#reason !== undefined) return;
    this.#reason = new GrpcError(Code.CANCELLED, why);
    this.#host.live.delete(this);
    // The client cancels at its own copy of the deadline, a little before the server's: within 50 ms counts.
    this.record(Date.now() >= this.deadline - 50 ? Code.DEADLINE_EXCEEDED : Code.CANCELLED);
    const listeners = this.#listeners;
    this.#listeners = undefined;
    if (listeners !== undefined) for (const listener of listeners) listener();
    this.#controller?.abort(this.#reason);
  }
}

export function createServer(options: ServerOptions): Ch8Server {
  const logger = options.logger ?? createLogger({ bindings: { service: options.name } });
  const transport = currentTransport();
  const tls = 'tls' in options ? options.tls : transport.tls;
  const limits: CallLimits = {
    ...DEFAULT_LIMITS,
    ...transport.limits,
    ...(options.maxMessageBytes !== undefined ? { maxMessageBytes: options.maxMessageBytes } : {}),
    ...options.limits,
  };
  const healthAddress = options.healthAddress ?? transport.healthAddress ?? '';
  /** ` (CH8_GATEWAY_MAX_CONCURRENT_CALLS)`: the setting a refusal names, when the limits say where they came from. */
  const setting = (name: string): string => (limits.settings ? ` (${limits.settings}_${name})` : '');
  const maxBuffered = Math.max(1, options.maxBufferedResponses ?? 8);
  const metrics = options.metrics ?? createServiceMetrics(options.name);
  const metricLabels = options.metricLabels ?? [];
  const rpc = createRpcMetrics(metrics, metricLabels);

  /**
   * The deadline of a call to `method` whose client asked for `clientDeadline` (ms since the epoch, or Infinity): the
   * server's default when it asked for none, cut to the server's longest; `imposed` says which, naming the setting.
   */
  const serverDeadline = (method: string, clientDeadline: number, now: number) => {
    const own = limits.methods?.[method];
    const defaultMs = own?.defaultDeadlineMs ?? limits.defaultDeadlineMs;
    const maxMs = own?.maxDeadlineMs ?? limits.maxDeadlineMs;
    let deadline = clientDeadline;
    let imposed: string | undefined;
    if (!Number.isFinite(deadline) && defaultMs > 0) {
      deadline = now + defaultMs;
      imposed = `the server's default deadline of ${defaultMs} ms${own ? ` for ${method}` : setting('DEFAULT_DEADLINE_MS')}`;
    }
    if (maxMs > 0 && deadline > now + maxMs) {
      deadline = now + maxMs;
      imposed = `the server's longest deadline of ${maxMs} ms${own ? ` for ${method}` : setting('MAX_DEADLINE_MS')}`;
    }
    return { deadline, imposed };
  };
  const deadlineLimits =
    limits.defaultDeadlineMs > 0 ||
    limits.maxDeadlineMs > 0 ||
    Object.values(limits.methods ?? {}).some((m) => m.defaultDeadlineMs > 0 || m.maxDeadlineMs > 0);

  /**
   * Admission, as soon as a call's headers arrive, before grpc-js reads its request: a call beyond
   * `maxConcurrentCalls` is refused (a flood of large requests is not buffered) and never reaches a handler; a call
   * the server gives a deadline (its default, or its longest) is ended with DEADLINE_EXCEEDED when that passes,
   * whether its handler runs or its request never came (grpc-js then tells the handler: its signal aborts).
   */
  let admitted = 0;
  const admission: grpc.ServerInterceptor = (descriptor, next) => {
    if (UNLIMITED_PATH.test(descriptor.path)) return new grpc.ServerInterceptingCall(next);
    let holding = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const release = () => {
      clearTimeout(timer);
      if (holding) {
        holding = false;
        admitted--;
      }
    };
    const method = descriptor.path.slice(descriptor.path.lastIndexOf('/') + 1);
    const call: grpc.ServerInterceptingCall = new grpc.ServerInterceptingCall(next, {
      start(startNext) {
        startNext({
          onReceiveMetadata(metadata, metadataNext) {
            if (limits.maxConcurrentCalls > 0 && admitted >= limits.maxConcurrentCalls) {
              const details = `too many concurrent calls: the limit is ${limits.maxConcurrentCalls}${setting('MAX_CONCURRENT_CALLS')}, retry later`;
              rpc.observe(
                {
                  ...Object.fromEntries(metricLabels.map((l) => [l, ''])),
                  method,
                  code: 'RESOURCE_EXHAUSTED',
                } as never,
                0,
              );
              logger.debug('call refused', { rpc: descriptor.path, code: 'RESOURCE_EXHAUSTED', details });
              call.sendStatus({ code: Code.RESOURCE_EXHAUSTED, details, metadata: new grpc.Metadata() });
              return;
            }
            if (limits.maxConcurrentCalls > 0) {
              admitted++;
              holding = true;
            }
            const now = Date.now();
            const { deadline, imposed } = serverDeadline(method, deadlineMs(next.getDeadline()), now);
            if (imposed !== undefined) {
              timer = setTimeout(
                () =>
                  call.sendStatus({
                    code: Code.DEADLINE_EXCEEDED,
                    details: `deadline exceeded: ${imposed} passed`,
                    metadata: new grpc.Metadata(),
                  }),
                deadline - now,
              );
              metadata.set(DEADLINE_KEY, String(deadline));
            }
            metadataNext(metadata);
          },
          onCancel() {
            release();
          },
        });
      },
      sendStatus(status, statusNext) {
        release();
        statusNext(status);
      },
    });
    return call;
  };

  const server = new grpc.Server({
    'grpc.max_receive_message_length': limits.maxMessageBytes,
    'grpc.max_send_message_length': limits.maxMessageBytes,
    ...(limits.maxConcurrentCalls > 0 || deadlineLimits ? { interceptors: [admission] } : {}),
    ...options.channelOptions,
  });
  let healthServer: grpc.Server | undefined;
  const health = new HealthImplementation({ '': 'NOT_SERVING' });
  const services: DescService[] = [];
  /** The calls in flight, for a hard stop at the end of the grace period. */
  const live = new Set<CallState>();
  let inFlight = 0;
  let started = false;

  const host: CallHost = {
    rpc: rpc as RpcMetrics<string>,
    logger,
    live,
    emptyLabels: Object.fromEntries(metricLabels.map((l) => [l, ''])),
  };

  const fail = (ctx: CallContext, error: unknown): grpc.ServiceError => {
    const s = statusOf(error);
    if (s.internal) ctx.logger.error('call failed with an unexpected error', { err: error });
    else ctx.logger.info('call failed', { code: codeName(s.code), details: s.details });
    return serviceError(s.code, s.details);
  };

  const track = async <T>(work: () => Promise<T>): Promise<T> => {
    inFlight++;
    try {
      return await work();
    } finally {
      inFlight--;
    }
  };

  /** One unary call: the handler, then its answer or its error, counted in flight meanwhile. */
  const runUnary = async (
    handler: UnaryHandler<unknown>,
    request: unknown,
    ctx: CallState,
    callback: grpc.sendUnaryData<unknown>,
    toMessage: (init: unknown) => unknown,
  ): Promise<void> => {
    inFlight++;
    try {
      const res = await handler(request as never, ctx);
      ctx.finish();
      ctx.record(Code.OK);
      callback(null, toMessage(res));
    } catch (e) {
      ctx.finish();
      const err = fail(ctx, e);
      ctx.record(err.code);
      callback(err);
    } finally {
      inFlight--;
    }
  };

  const api: Ch8Server = {
    add(service, handlers) {
      const impl: grpc.UntypedServiceImplementation = {};
      const table = handlers as Record<string, (...args: never[]) => unknown>;
      for (const method of service.methods) {
        const handler = table[method.localName];
        if (typeof handler !== 'function') throw new Error(`no handler for ${service.typeName}.${method.name}`);
        const name = `${service.typeName}/${method.name}`;
        const short = method.name;
        const output = method.output;
        const toMessage = (init: unknown) => create(output, init as never);
        switch (method.methodKind) {
          case 'unary':
            impl[method.name] = (
              call: grpc.ServerUnaryCall<unknown, unknown>,
              callback: grpc.sendUnaryData<unknown>,
            ) => {
              const answer = answerOnce(callback);
              const ctx = new CallState(host, call, name, short, answer);
              void runUnary(handler as UnaryHandler<unknown>, call.request, ctx, answer, toMessage);
            };
            break;
          case 'client_streaming':
            impl[method.name] = (
              call: grpc.ServerReadableStream<unknown, unknown>,
              given: grpc.sendUnaryData<unknown>,
            ) => {
              const callback = answerOnce(given);
              const ctx = new CallState(host, call, name, short, callback);
              void track(async () => {
                try {
                  const requests = counted(readAll(call), () => rpc.received(short));
                  const res = await (handler as ClientStreamHandler<unknown>)(requests as never, ctx);
                  ctx.finish();
                  ctx.record(Code.OK);
                  callback(null, toMessage(res));
                } catch (e) {
                  ctx.finish();
                  const err = fail(ctx, e);
                  ctx.record(err.code);
                  callback(err);
                }
              });
            };
            break;
          case 'server_streaming':
          case 'bidi_streaming':
            impl[method.name] = (
              call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>,
            ) => {
              const ctx = new CallState(host, call, name, short, (err) => call.emit('error', err));
              const record = (code: Code) => ctx.record(code);
              void track(async () => {
                // Bounded buffering: at most `maxBuffered` responses handed to grpc-js and not yet flushed.
                let pending = 0;
                let wake: (() => void) | undefined;
                const flushed = () => {
                  pending--;
                  wake?.();
                };
                ctx.signal.addEventListener('abort', () => wake?.(), { once: true });
                try {
                  const source =
                    method.methodKind === 'server_streaming'
                      ? (handler as ServerStreamHandler<unknown>)(
                          (call as grpc.ServerWritableStream<unknown, unknown>).request as never,
                          ctx,
                        )
                      : (handler as BidiStreamHandler<unknown>)(
                          counted(readAll(call as grpc.ServerDuplexStream<unknown, unknown>), () =>
                            rpc.received(short),
                          ) as never,
                          ctx,
                        );
                  for await (const item of source) {
                    if (ctx.signal.aborted) break;
                    pending++;
                    call.write(toMessage(item), flushed);
                    rpc.sent(short);
                    while (pending >= maxBuffered && !ctx.signal.aborted) {
                      await new Promise<void>((resolve) => (wake = resolve));
                      wake = undefined;
                    }
                  }
                  if (ctx.signal.aborted) return;
                  call.end();
                  record(Code.OK);
                  if (call.writableLength > 0 || pending > 0) await once(call, 'finish').catch(() => undefined);
                } catch (e) {
                  if (ctx.signal.aborted) return;
                  const err = fail(ctx, e);
                  record(err.code);
                  call.emit('error', err);
                }
              });
            };
            break;
        }
      }
      server.addService(serviceDefinition(service), impl);
      services.push(service);
      health.setStatus(service.typeName, 'NOT_SERVING');
      return this;
    },

    async listen(address) {
      if (started) throw new Error('server already listening');
      started = true;
      health.addToServer(server);
      const healthDef = loadSync(healthProtoPath, { keepCase: true });
      const reflection = new ReflectionService({
        ...healthDef,
        'ch8.reflection': {
          format: 'Protocol Buffer 3 DescriptorProto',
          type: {},
          fileDescriptorProtos: fileDescriptorProtos(services),
        },
      } as never);
      reflection.addToServer(server);
      const bind = (target: grpc.Server, at: string, credentials: grpc.ServerCredentials) =>
        new Promise<number>((resolve, reject) =>
          target.bindAsync(at, credentials, (err, p) => (err ? reject(err) : resolve(p))),
        );
      const port = await bind(server, address, serverCredentials(tls));
      const bound = address.replace(/:\d+$/, `:${port}`);
      if (tls === undefined && !isLoopbackAddress(address))
        logger.warn(
          'serving plaintext gRPC on a non-loopback address: anyone who reaches it can call it and read the traffic; set CH8_TLS_CERT and CH8_TLS_KEY to serve TLS',
          {
            address: bound,
          },
        );
      logger.info('listening', {
        address: bound,
        port,
        tls: tls === undefined ? 'off' : tls.requireClientCert ? 'mutual' : 'on',
      });
      if (healthAddress !== '') {
        // Probes (Kubernetes' gRPC probes speak no TLS) reach the same health statuses on a plaintext port that
        // serves nothing else; it stops with the server.
        const probeServer = new grpc.Server();
        health.addToServer(probeServer);
        try {
          const healthPort = await bind(probeServer, healthAddress, grpc.ServerCredentials.createInsecure());
          healthServer = probeServer;
          logger.info('health listening', {
            address: healthAddress.replace(/:\d+$/, `:${healthPort}`),
            port: healthPort,
          });
        } catch (e) {
          server.forceShutdown();
          const field = limits.settings ? `${limits.settings}_HEALTH_ADDR ` : '';
          throw new Error(`the health port ${field}${healthAddress} cannot be bound: ${(e as Error).message}`, {
            cause: e,
          });
        }
      }
      return port;
    },

    setStatus(service, status) {
      health.setStatus(service, status);
    },

    ready(except = []) {
      health.setStatus('', 'SERVING');
      for (const s of services) if (!except.includes(s.typeName)) health.setStatus(s.typeName, 'SERVING');
    },

    async shutdown(graceMs = 10_000) {
      health.setStatus('', 'NOT_SERVING');
      for (const s of services) health.setStatus(s.typeName, 'NOT_SERVING');
      logger.info('shutting down', { in_flight: inFlight, grace_ms: graceMs });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          logger.warn('grace period over, cancelling calls still running', { in_flight: inFlight });
          for (const call of [...live]) call.stop('server shutting down');
          server.forceShutdown();
          resolve();
        }, graceMs);
        timer.unref();
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      healthServer?.forceShutdown();
      logger.info('stopped');
    },

    get inFlight() {
      return inFlight;
    },
    metrics,
    logger,
    grpc: server,
  };
  return api;
}
