/**
 * Memory figures for the flood tests of slirp and uip: JS heap in use plus ArrayBuffer bytes
 * (where packet buffers live), after a forced full GC so that only what is still reachable is
 * counted. `gc` is obtained without `--expose-gc` on the command line: the flag is set at run time and the
 * function taken from a fresh context (V8 installs it there once the flag is on).
 */
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Reachable bytes: heapUsed + arrayBuffers after two full collections. */
export function liveBytes(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

export const MiB = 1024 * 1024;
export const KiB = 1024;

/** One row of the flood table in docs/security.md. */
export interface FloodFigure {
  backend: string;
  flood: string;
  limit: string;
  /** Growth of live bytes from before the flood to its peak (sampled after GC). */
  peakBytes: number;
  /** Growth still present after the flood ended and the stack settled. */
  afterBytes: number;
  bound: number;
  refusals: string;
}

export function formatFigures(rows: FloodFigure[]): string {
  const mib = (n: number) => `${(n / MiB).toFixed(2)} MiB`;
  return rows
    .map((r) => `| ${r.backend} | ${r.flood} | ${r.limit} | ${mib(r.peakBytes)} (after: ${mib(r.afterBytes)}) | ${mib(r.bound)} | ${r.refusals} |`)
    .join('\n');
}
