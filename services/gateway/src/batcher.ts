/**
 * Dynamic batching: the items (texts) of concurrent requests for one model version are merged into model calls of
 * at most `maxBatch` items. A call starts when `maxBatch` items wait or when the oldest waiting item has waited
 * `maxDelayMs`, whichever comes first; one call runs at a time and the items arriving meanwhile form the next.
 * The queue is bounded (`maxQueue` items): beyond it a request is refused with OverloadedError
 * (RESOURCE_EXHAUSTED). A request whose deadline passes, or whose caller cancels, while it waits is dropped
 * from the queue and never computed.
 *
 * A call that starts without waiting (maxDelayMs 0) either first lets the rest of the event loop's turn run, so the
 * callers whose requests are being read join it (worth it when a model call has a fixed cost: tfjs), or starts in
 * the turn of the request that starts it (`gatherTurn` false: a computation whose cost is per item only, where
 * merging saves nothing; see the gateway README, "Batching").
 */
import { CancelledError, DeadlineExceededError, OverloadedError } from '@ch8/errors';

export interface BatcherOptions {
  maxBatch: number;
  maxDelayMs: number;
  maxQueue: number;
  /** What the queue belongs to, for messages ("model sst2 version 3"). */
  label: string;
  /**
   * Whether a call that starts without waiting (`maxBatch` items already there, or `maxDelayMs` passed) first lets
   * the rest of the event loop's turn run (setImmediate), so the callers being read in it join the call. Default
   * true. False: the call starts once the current synchronous code ends (a microtask).
   */
  gatherTurn?: boolean;
}

export interface BatchObserver {
  /** Seconds a request waited from enqueue until its first item went into a model call. */
  queued?(seconds: number): void;
  /** Items in one model call. */
  batch?(size: number): void;
}

/** A call that can be aborted without an AbortSignal (the service kit's CallContext is one). */
export interface Abortable {
  readonly aborted: boolean;
  /** Runs `listener` once on abort; returns the function that removes it. */
  onAbort(listener: () => void): () => void;
}

export interface EnqueueOptions {
  /** Absolute deadline, ms since the epoch (Infinity: none). */
  deadline?: number;
  /** The caller's cancellation: an AbortSignal, or an Abortable (a handler's CallContext: no signal made per call). */
  signal?: AbortSignal | Abortable;
}

const noop = () => {};

/** A call aborted this close to its deadline is taken as past it (clocks of client and server copies differ). */
const DEADLINE_SLACK_MS = 50;

interface Pending<T, R> {
  items: readonly T[];
  results: R[];
  /** Items taken into model calls so far. */
  taken: number;
  /** Items whose results came back. */
  done: number;
  deadline: number;
  enqueuedAt: number;
  settled: boolean;
  resolve(results: R[]): void;
  reject(error: unknown): void;
  detach(): void;
}

/**
 * The error for a request whose deadline passed before it was computed. @ch8/errors has no deadline class, so this
 * is the status itself (see the gateway README).
 */
export function deadlineExceeded(message: string): DeadlineExceededError {
  return new DeadlineExceededError(message);
}

export class Batcher<T, R> {
  readonly #options: BatcherOptions;
  readonly #run: (items: T[]) => Promise<R[]>;
  readonly #observer: BatchObserver;
  readonly #queue: Pending<T, R>[] = [];
  /** Items in the queue not yet taken into a call. */
  #waiting = 0;
  #running = false;
  #timer: NodeJS.Timeout | undefined;
  #closed: Error | undefined;
  #gatherTurn: boolean;

  constructor(options: BatcherOptions, run: (items: T[]) => Promise<R[]>, observer: BatchObserver = {}) {
    this.#options = options;
    this.#run = run;
    this.#observer = observer;
    this.#gatherTurn = options.gatherTurn ?? true;
  }

  /** {@link BatcherOptions.gatherTurn}; a change applies from the next model call on. */
  get gatherTurn(): boolean {
    return this.#gatherTurn;
  }

  set gatherTurn(on: boolean) {
    this.#gatherTurn = on;
  }

  /** Items waiting to be computed. */
  get depth(): number {
    return this.#waiting;
  }

  /** Whether a model call is running now. */
  get busy(): boolean {
    return this.#running;
  }

  /** Computes `items` (in some batch together with other requests' items); results in the same order. */
  enqueue(items: readonly T[], options: EnqueueOptions = {}): Promise<R[]> {
    if (this.#closed !== undefined) return Promise.reject(this.#closed);
    if (items.length === 0) return Promise.resolve([]);
    const { label, maxQueue } = this.#options;
    const deadline = options.deadline ?? Infinity;
    const now = Date.now();
    if (now >= deadline)
      return Promise.reject(deadlineExceeded(`deadline passed before ${label} could queue the request`));
    if (options.signal?.aborted) return Promise.reject(new CancelledError('the call was cancelled'));
    if (this.#waiting + items.length > maxQueue) {
      return Promise.reject(
        new OverloadedError(
          `the queue of ${label} is full (${this.#waiting} texts waiting, ${items.length} more would pass the limit of ${maxQueue}); retry later`,
        ),
      );
    }
    return new Promise<R[]>((resolve, reject) => {
      const signal = options.signal;
      // The client cancels at its own deadline, which the server's copy trails by the transit time.
      const onAbort = () => this.#drop(pending, Date.now() >= deadline - DEADLINE_SLACK_MS ? 'deadline' : 'cancelled');
      const pending: Pending<T, R> = {
        items,
        results: new Array<R>(items.length),
        taken: 0,
        done: 0,
        deadline,
        enqueuedAt: now,
        settled: false,
        resolve,
        reject,
        detach: noop,
      };
      if (signal !== undefined) {
        if ('onAbort' in signal) pending.detach = signal.onAbort(onAbort);
        else {
          signal.addEventListener('abort', onAbort, { once: true });
          pending.detach = () => signal.removeEventListener('abort', onAbort);
        }
      }
      this.#queue.push(pending);
      this.#waiting += items.length;
      this.#schedule();
    });
  }

  /** Refuses new requests and fails those still waiting with `error`; a running call finishes. */
  close(error: Error): void {
    this.#closed = error;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const p of this.#queue.splice(0)) this.#settle(p, error);
    this.#waiting = 0;
  }

  #settle(p: Pending<T, R>, error?: unknown): void {
    if (p.settled) return;
    p.settled = true;
    p.detach();
    if (error === undefined) p.resolve(p.results);
    else p.reject(error);
  }

  /** Takes a request that is still waiting out of the queue (deadline passed or cancelled). */
  #drop(p: Pending<T, R>, why: 'deadline' | 'cancelled'): void {
    if (p.settled) return;
    const i = this.#queue.indexOf(p);
    if (i >= 0) {
      this.#queue.splice(i, 1);
      this.#waiting -= p.items.length - p.taken;
    }
    this.#settle(
      p,
      why === 'deadline'
        ? deadlineExceeded(`deadline passed while the request waited in the queue of ${this.#options.label}`)
        : new CancelledError('the call was cancelled while it waited'),
    );
  }

  #schedule(): void {
    if (this.#running || this.#queue.length === 0 || this.#closed !== undefined) return;
    const { maxBatch, maxDelayMs } = this.#options;
    const waited = Date.now() - this.#queue[0]!.enqueuedAt;
    if (this.#waiting >= maxBatch || waited >= maxDelayMs) {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = undefined;
      if (this.#gatherTurn) {
        // Let the callers that are ready in this turn of the event loop join the call.
        setImmediate(() => void this.#dispatch());
      } else {
        // The enqueueing code runs to its end first, then the call starts, in the same turn.
        queueMicrotask(() => void this.#dispatch());
      }
      this.#running = true;
      return;
    }
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#schedule();
      }, maxDelayMs - waited);
    }
  }

  async #dispatch(): Promise<void> {
    const { maxBatch } = this.#options;
    const now = Date.now();
    const batch: T[] = [];
    /** Per request in the call: the request, where its slice starts in it, and its first item's index. */
    const parts: { p: Pending<T, R>; at: number; from: number; n: number }[] = [];
    while (batch.length < maxBatch && this.#queue.length > 0) {
      const p = this.#queue[0]!;
      if (p.taken === 0 && now >= p.deadline) {
        this.#drop(p, 'deadline');
        continue;
      }
      if (p.taken === 0) this.#observer.queued?.((now - p.enqueuedAt) / 1000);
      const n = Math.min(maxBatch - batch.length, p.items.length - p.taken);
      parts.push({ p, at: batch.length, from: p.taken, n });
      for (let k = 0; k < n; k++) batch.push(p.items[p.taken + k]!);
      p.taken += n;
      this.#waiting -= n;
      if (p.taken === p.items.length) this.#queue.shift();
    }
    if (batch.length > 0) {
      this.#observer.batch?.(batch.length);
      try {
        const results = await this.#run(batch);
        for (const { p, at, from, n } of parts) {
          if (p.settled) continue;
          for (let k = 0; k < n; k++) p.results[from + k] = results[at + k]!;
          p.done += n;
          if (p.done === p.items.length) this.#settle(p);
        }
      } catch (e) {
        for (const { p } of parts) {
          const i = this.#queue.indexOf(p);
          if (i >= 0) {
            this.#queue.splice(i, 1);
            this.#waiting -= p.items.length - p.taken;
          }
          this.#settle(p, e);
        }
      }
    }
    this.#running = false;
    this.#schedule();
  }
}
