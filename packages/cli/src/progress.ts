/**
 * Training progress on standard error: on a terminal one live line (epoch, a bar of the epoch's steps, live loss,
 * examples/s, ETA of the epoch), redrawn in place; otherwise (a pipe, a log file, tests) plain log lines, one per
 * reported step and one per epoch.
 */
import type { CommandIO } from './command.ts';

export interface StepView {
  epoch: number;
  epochs: number;
  step: number;
  stepsInEpoch: number;
  loss: number;
  accuracy: number;
  examplesPerSecond: number;
  /** Seconds since the epoch started, for the ETA. */
  elapsed: number;
}

export interface EpochView {
  epoch: number;
  trainLoss: number;
  trainAccuracy: number;
  devLoss?: number | undefined;
  devAccuracy?: number | undefined;
  examplesPerSecond: number;
}

export interface Progress {
  step(s: StepView): void;
  epoch(e: EpochView): void;
  /** A line of text (clears the live line first). */
  log(line: string): void;
  done(): void;
}

function clock(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** The live line for a step (exported for tests). */
export function stepLine(s: StepView, columns: number): string {
  // A terminal that reports no size (0 columns, as some pseudo-terminals do) is taken as 80 wide.
  const width = columns > 0 ? columns : 80;
  const frac = s.stepsInEpoch > 0 ? Math.min(1, s.step / s.stepsInEpoch) : 0;
  const eta = frac > 0 ? (s.elapsed / frac) * (1 - frac) : Number.NaN;
  const text = ` step ${s.step}/${s.stepsInEpoch} loss ${s.loss.toFixed(4)} acc ${s.accuracy.toFixed(3)} ${Math.round(s.examplesPerSecond)} ex/s ETA ${clock(eta)}`;
  const head = `epoch ${s.epoch}/${s.epochs} `;
  const barWidth = Math.max(10, Math.min(40, width - head.length - text.length - 3));
  const filled = Math.round(frac * barWidth);
  return `${head}[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}]${text}`.slice(0, Math.max(20, width - 1));
}

export function epochLine(e: EpochView): string {
  const dev = e.devAccuracy === undefined ? '' : `; dev loss ${e.devLoss!.toFixed(4)}, acc ${e.devAccuracy.toFixed(4)}`;
  return `epoch ${e.epoch}: train loss ${e.trainLoss.toFixed(4)}, acc ${e.trainAccuracy.toFixed(4)}${dev} (${Math.round(e.examplesPerSecond)} ex/s)`;
}

export function createProgress(io: CommandIO): Progress {
  const term = io.terminal;
  if (term === undefined) {
    return {
      step: (s) =>
        io.log(
          `epoch ${s.epoch} step ${s.step}/${s.stepsInEpoch}: loss ${s.loss.toFixed(4)} (${Math.round(s.examplesPerSecond)} ex/s)`,
        ),
      epoch: (e) => io.log(epochLine(e)),
      log: (line) => io.log(line),
      done: () => {},
    };
  }
  let live = false;
  /** Text after clearing the live line, if one is shown. */
  const over = (text: string): void => {
    term.write(live ? `\r\x1b[2K${text}` : text);
    live = false;
  };
  const clear = (): void => {
    if (live) over('');
  };
  return {
    step(s) {
      term.write(`\r\x1b[2K${stepLine(s, term.columns())}`);
      live = true;
    },
    epoch: (e) => over(`${epochLine(e)}\n`),
    log: (line) => over(`${line}\n`),
    done: clear,
  };
}
