/**
 * The trainer's state on disk, kept across restarts: `<stateDir>/runs/<runId>/run.json` (the Run as protobuf JSON,
 * replaced atomically: written beside, fsynced, renamed), `events.jsonl` (one WatchRunResponse per line, appended)
 * and `checkpoints/` (the run's training checkpoints, removed when the run ends). Writes of one run happen in order.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { appendFile, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fromJsonString, toJsonString } from '@bufbuild/protobuf';
import { RunSchema, WatchRunResponseSchema, type Run, type WatchRunResponse } from '@ch8/contracts/trainer';
import type { Logger } from '@ch8/service-kit/logger';

export const RUN_FILE = 'run.json';
export const EVENTS_FILE = 'events.jsonl';
export const CHECKPOINT_DIR = 'checkpoints';

/** Run ids the trainer makes (`run-20250102-030405-1a2b3c4d`); anything else under runs/ is ignored. */
export const RUN_ID_PATTERN = /^run-\d{8}-\d{6}-[0-9a-f]{8}$/;

export function newRunId(now = new Date()): string {
  const iso = now.toISOString();
  const stamp = `${iso.slice(0, 10).replaceAll('-', '')}-${iso.slice(11, 19).replaceAll(':', '')}`;
  return `run-${stamp}-${randomBytes(4).toString('hex')}`;
}

export interface StoredRun {
  run: Run;
  events: WatchRunResponse[];
}

export class RunStore {
  readonly runsDir: string;
  private readonly chains = new Map<string, Promise<void>>();

  constructor(
    stateDir: string,
    private readonly logger: Logger,
  ) {
    this.runsDir = join(stateDir, 'runs');
    mkdirSync(this.runsDir, { recursive: true });
  }

  dirOf(runId: string): string {
    return join(this.runsDir, runId);
  }

  checkpointDirOf(runId: string): string {
    return join(this.dirOf(runId), CHECKPOINT_DIR);
  }

  /** Every run on disk (synchronously: the trainer reads its state once, at start). Unreadable records are skipped with a warning. */
  loadAll(): StoredRun[] {
    const out: StoredRun[] = [];
    for (const name of readdirSync(this.runsDir)) {
      if (!RUN_ID_PATTERN.test(name)) continue;
      const file = join(this.dirOf(name), RUN_FILE);
      if (!existsSync(file)) continue;
      let run: Run;
      try {
        run = fromJsonString(RunSchema, readFileSync(file, 'utf8'));
      } catch (e) {
        this.logger.warn('skipping a run record that does not parse', { file, err: e });
        continue;
      }
      if (run.runId !== name) {
        this.logger.warn('skipping a run record whose run_id is not its directory name', { file, run_id: run.runId });
        continue;
      }
      const events: WatchRunResponse[] = [];
      const eventsFile = join(this.dirOf(name), EVENTS_FILE);
      if (existsSync(eventsFile)) {
        for (const line of readFileSync(eventsFile, 'utf8').split('\n')) {
          if (line.trim() === '') continue;
          try {
            events.push(fromJsonString(WatchRunResponseSchema, line));
          } catch {
            // A line cut short by a crash mid-append: the events before it are kept.
            this.logger.warn('skipping an event line that does not parse', { file: eventsFile });
          }
        }
      }
      out.push({ run, events });
    }
    return out;
  }

  private enqueue(runId: string, what: string, work: () => Promise<void>): Promise<void> {
    const next = (this.chains.get(runId) ?? Promise.resolve()).then(work).catch((e: unknown) => {
      this.logger.error(`could not write the run's ${what}`, { run_id: runId, err: e });
    });
    this.chains.set(runId, next);
    return next;
  }

  /** Replaces run.json atomically (after the writes queued before it). */
  saveRun(run: Run): Promise<void> {
    const json = toJsonString(RunSchema, run, { prettySpaces: 2 }) + '\n';
    const dir = this.dirOf(run.runId);
    return this.enqueue(run.runId, RUN_FILE, async () => {
      mkdirSync(dir, { recursive: true });
      const tmp = join(dir, `.${RUN_FILE}.${randomBytes(4).toString('hex')}`);
      try {
        const fh = await open(tmp, 'w');
        try {
          await fh.writeFile(json);
          await fh.sync();
        } finally {
          await fh.close();
        }
        await rename(tmp, join(dir, RUN_FILE));
      } catch (e) {
        await rm(tmp, { force: true });
        throw e;
      }
    });
  }

  appendEvent(runId: string, event: WatchRunResponse): Promise<void> {
    const line = toJsonString(WatchRunResponseSchema, event) + '\n';
    const dir = this.dirOf(runId);
    return this.enqueue(runId, EVENTS_FILE, async () => {
      mkdirSync(dir, { recursive: true });
      await appendFile(join(dir, EVENTS_FILE), line);
    });
  }

  removeCheckpoints(runId: string): Promise<void> {
    return this.enqueue(runId, CHECKPOINT_DIR, () => rm(this.checkpointDirOf(runId), { recursive: true, force: true }));
  }

  /** Resolves once every write queued so far is done. */
  async flush(): Promise<void> {
    await Promise.all([...this.chains.values()]);
  }
}
