/**
 * The waiting phases of `ch8 chapter` (services starting, data being prepared, models loading in the gateway) on
 * standard error: on a terminal one live line with a bar (done/total, or a bouncing block while the total is
 * unknown) and the elapsed time, redrawn five times a second; otherwise one plain line when the phase starts, one
 * per change of `done`, and one at the end.
 */
import type { CommandIO } from './command.ts';

export interface Phase {
  /** Progress so far: `done` of `total` (total unknown: undefined). */
  update(done: number, total?: number, note?: string): void;
  /** Ends the phase with a line (replacing the live one). */
  end(line: string): void;
}

/** The live line of a phase (exported for tests). */
export function phaseLine(
  label: string,
  seconds: number,
  width: number,
  done?: number,
  total?: number,
  note?: string,
): string {
  // A terminal that reports no size (0 columns, as some pseudo-terminals do) is taken as 80 wide.
  width = width > 0 ? width : 80;
  const barWidth = Math.max(10, Math.min(30, width - label.length - 40));
  let bar: string;
  let count = '';
  if (total !== undefined && total > 0 && done !== undefined) {
    const filled = Math.round(Math.min(1, done / total) * barWidth);
    bar = '#'.repeat(filled) + '.'.repeat(barWidth - filled);
    count = ` ${done}/${total}`;
  } else {
    // Unknown total: a block of 3 bouncing across the bar, 5 cells a second.
    const span = barWidth - 3;
    const t = Math.floor(seconds * 5) % (2 * span);
    const at = t <= span ? t : 2 * span - t;
    bar = '.'.repeat(at) + '###' + '.'.repeat(span - at);
  }
  const text = `${label} [${bar}]${count} ${seconds.toFixed(1)} s${note ? `  ${note}` : ''}`;
  return text.slice(0, Math.max(20, width - 1));
}

export function startPhase(io: CommandIO, label: string): Phase {
  const t0 = performance.now();
  const term = io.terminal;
  let done: number | undefined;
  let total: number | undefined;
  let note: string | undefined;
  if (term === undefined) {
    io.log(`${label} ...`);
    return {
      update(d, t, n) {
        if (d === done && n === note) return;
        done = d;
        total = t;
        note = n;
        io.log(`${label}: ${t === undefined ? d : `${d}/${t}`}${n ? ` ${n}` : ''}`);
      },
      end: (line) => io.log(line),
    };
  }
  const draw = (): void =>
    term.write(`\r\x1b[2K${phaseLine(label, (performance.now() - t0) / 1000, term.columns(), done, total, note)}`);
  draw();
  const timer = setInterval(draw, 200);
  timer.unref();
  return {
    update(d, t, n) {
      done = d;
      total = t;
      note = n;
      draw();
    },
    end(line) {
      clearInterval(timer);
      term.write(`\r\x1b[2K${line}\n`);
    },
  };
}
