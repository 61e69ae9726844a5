/**
 * A DataFeed across a MessagePort: one thread owns the real feed (the gRPC one: HTTP/2, protobuf and Arrow decoding
 * on its event loop), another trains from it. `serveFeed` runs beside the real feed and opens it on the first
 * request; `portFeed` is the DataFeed the training thread uses. Each batch travels as one transferred buffer (no
 * structured clone of its arrays); the consumer grants credit, so at most `prefetch` batches are in flight per
 * stream. Errors cross as { name, message, field } and come back as the same @ch8/errors class.
 */
import type { MessagePort } from 'node:worker_threads';
import type { Batch } from '@ch8/batching/collate';
import { CancelledError, errorFromPlain, errorToPlain, type PlainError } from '@ch8/errors';
import type { DataFeed, EpochOptions, FeedInfo } from './feed.ts';

interface WireBatch {
  buffer: ArrayBuffer;
  batchSize: number;
  maxLength: number;
}

type Request =
  | { op: 'open' }
  | { op: 'matrix' }
  | { op: 'batches'; stream: number; split: string; options: EpochOptions; credit: number }
  | { op: 'credit'; stream: number; n: number }
  | { op: 'stop'; stream: number };

type Reply =
  | { op: 'info'; info: FeedInfo }
  | { op: 'log'; line: string }
  | { op: 'matrix'; matrix: Float32Array }
  | { op: 'batch'; stream: number; batch: WireBatch }
  | { op: 'end'; stream: number }
  | { op: 'error'; stream: number | null; error: PlainError };

/** The four arrays of a batch in one fresh buffer (ids, labels, lengths, indices), to transfer. */
function pack(b: Batch): WireBatch {
  const n = b.batchSize * b.maxLength;
  const buffer = new ArrayBuffer(4 * (n + 3 * b.batchSize));
  new Int32Array(buffer, 0, n).set(b.inputIds);
  new Float32Array(buffer, 4 * n, b.batchSize).set(b.labels);
  new Int32Array(buffer, 4 * (n + b.batchSize), b.batchSize).set(b.lengths);
  new Int32Array(buffer, 4 * (n + 2 * b.batchSize), b.batchSize).set(b.indices);
  return { buffer, batchSize: b.batchSize, maxLength: b.maxLength };
}

function unpack(w: WireBatch): Batch {
  const { buffer, batchSize: b, maxLength: t } = w;
  const n = b * t;
  return {
    inputIds: new Int32Array(buffer, 0, n),
    batchSize: b,
    maxLength: t,
    labels: new Float32Array(buffer, 4 * n, b),
    lengths: new Int32Array(buffer, 4 * (n + b), b),
    indices: new Int32Array(buffer, 4 * (n + 2 * b), b),
  };
}

/**
 * Serves a feed on `port`: `open` is called once, on the first request (its errors go back to the consumer).
 * Returns a function that stops every stream and closes the port.
 */
export function serveFeed(port: MessagePort, open: () => Promise<DataFeed>): () => void {
  let feed: Promise<DataFeed> | undefined;
  const streams = new Map<number, { credit: number; wake?: () => void; stop: AbortController }>();
  const post = (m: Reply, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);
  const opened = (): Promise<DataFeed> => (feed ??= open());
  const serveStream = async (req: Extract<Request, { op: 'batches' }>): Promise<void> => {
    const state: { credit: number; wake?: () => void; stop: AbortController } = {
      credit: req.credit,
      stop: new AbortController(),
    };
    streams.set(req.stream, state);
    try {
      const f = await opened();
      // Credit first, then the next batch: the producer never holds or builds more than the consumer allowed.
      const it = f.batches(req.split, req.options, state.stop.signal)[Symbol.asyncIterator]();
      try {
        for (;;) {
          while (state.credit <= 0 && !state.stop.signal.aborted) await new Promise<void>((r) => (state.wake = r));
          if (state.stop.signal.aborted) return;
          const next = await it.next();
          if (next.done) break;
          state.credit--;
          const batch = pack(next.value);
          post({ op: 'batch', stream: req.stream, batch }, [batch.buffer]);
        }
      } finally {
        await it.return?.();
      }
      if (!state.stop.signal.aborted) post({ op: 'end', stream: req.stream });
    } catch (e) {
      if (!state.stop.signal.aborted) post({ op: 'error', stream: req.stream, error: errorToPlain(e) });
    } finally {
      streams.delete(req.stream);
    }
  };
  port.on('message', (req: Request) => {
    switch (req.op) {
      case 'open':
        opened().then(
          (f) => post({ op: 'info', info: f.info }),
          (e: unknown) => post({ op: 'error', stream: null, error: errorToPlain(e) }),
        );
        break;
      case 'matrix':
        opened()
          .then((f) => f.matrix())
          .then(
            (m) => {
              const copy = Float32Array.from(m); // the feed may keep its own
              post({ op: 'matrix', matrix: copy }, [copy.buffer]);
            },
            (e: unknown) => post({ op: 'error', stream: null, error: errorToPlain(e) }),
          );
        break;
      case 'batches':
        void serveStream(req);
        break;
      case 'credit': {
        const s = streams.get(req.stream);
        if (s !== undefined) {
          s.credit += req.n;
          s.wake?.();
        }
        break;
      }
      case 'stop': {
        const s = streams.get(req.stream);
        s?.stop.abort();
        s?.wake?.();
        break;
      }
    }
  });
  return () => {
    for (const s of streams.values()) {
      s.stop.abort();
      s.wake?.();
    }
    port.close();
  };
}

/** Forwards a log line to the consumer's `log` (for use inside `open`). */
export function portLog(port: MessagePort): (line: string) => void {
  return (line) => port.postMessage({ op: 'log', line } satisfies Reply);
}

/** The consumer side: a DataFeed whose work happens wherever `serveFeed` runs. Opens the feed (info) before returning. */
export async function portFeed(
  port: MessagePort,
  options: { prefetch?: number; log?: (line: string) => void; signal?: AbortSignal } = {},
): Promise<DataFeed> {
  const prefetch = Math.max(1, options.prefetch ?? 64);
  let nextStream = 1;
  type Waiter = { resolve: (v: unknown) => void; reject: (e: Error) => void };
  let pending: Waiter | undefined; // the one outstanding open/matrix request
  const streams = new Map<number, { queue: Batch[]; done: boolean; error?: Error; wake?: () => void }>();
  port.on('message', (m: Reply) => {
    switch (m.op) {
      case 'log':
        options.log?.(m.line);
        break;
      case 'info':
      case 'matrix': {
        const w = pending;
        pending = undefined;
        w?.resolve(m.op === 'info' ? m.info : m.matrix);
        break;
      }
      case 'batch': {
        const s = streams.get(m.stream);
        if (s !== undefined) {
          s.queue.push(unpack(m.batch));
          s.wake?.();
        }
        break;
      }
      case 'end':
      case 'error': {
        if (m.op === 'error' && m.stream === null) {
          const w = pending;
          pending = undefined;
          w?.reject(errorFromPlain(m.error));
          break;
        }
        const s = streams.get(m.stream as number);
        if (s !== undefined) {
          s.done = true;
          if (m.op === 'error') s.error = errorFromPlain(m.error);
          s.wake?.();
        }
        break;
      }
    }
  });
  const request = <T>(req: Request): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (pending !== undefined) throw new Error('portFeed: one open/matrix request at a time');
      pending = { resolve: resolve as (v: unknown) => void, reject };
      port.postMessage(req);
    });
  const onAbort = (): void => {
    pending?.reject(new CancelledError('cancelled'));
    pending = undefined;
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const info = await request<FeedInfo>({ op: 'open' });

  async function* batches(split: string, o: EpochOptions, signal?: AbortSignal): AsyncGenerator<Batch> {
    const stream = nextStream++;
    const s: { queue: Batch[]; done: boolean; error?: Error; wake?: () => void } = { queue: [], done: false };
    streams.set(stream, s);
    const wake = (): void => s.wake?.();
    signal?.addEventListener('abort', wake, { once: true });
    port.postMessage({ op: 'batches', stream, split, options: o, credit: prefetch } satisfies Request);
    // Credit goes back in bulk (a message per quarter of the window, not per batch), and always before waiting on
    // an empty queue, so the producer never waits for credit the consumer holds.
    const bulk = Math.max(1, Math.floor(prefetch / 4));
    let owed = 0;
    const repay = (): void => {
      if (owed > 0) port.postMessage({ op: 'credit', stream, n: owed } satisfies Request);
      owed = 0;
    };
    try {
      for (;;) {
        if (signal?.aborted) return;
        const b = s.queue.shift();
        if (b !== undefined) {
          if (++owed >= bulk) repay();
          yield b;
          continue;
        }
        if (s.done) {
          if (s.error !== undefined) throw s.error;
          return;
        }
        repay();
        await new Promise<void>((r) => (s.wake = r));
      }
    } finally {
      signal?.removeEventListener('abort', wake);
      if (!s.done) port.postMessage({ op: 'stop', stream } satisfies Request);
      streams.delete(stream);
    }
  }

  return {
    info,
    matrix: () => request<Float32Array>({ op: 'matrix' }),
    batches,
    close: async () => {
      options.signal?.removeEventListener('abort', onAbort);
      port.close();
    },
  };
}
