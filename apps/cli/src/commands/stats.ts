/**
 * `guestnet stats`: the counters of a running `guestnet serve` (clients, transport and backend
 * counters, drops by reason), read through its control socket, printed as JSON.
 */
import type { Command } from './command.ts';
import { UsageError } from '../usage-error.ts';
import { parseArgs } from '../serve/args.ts';
import { controlRequest } from '../serve/control.ts';
import { controlPathFrom } from './hostfwd.ts';

export const statsCommand: Command = {
  synopsis: 'stats [--control unix:PATH]',
  summary: 'print the counters of a running `guestnet serve` as JSON',
  async run(args, { out }) {
    const a = parseArgs(args, { values: ['control'], booleans: ['compact'] }, 'stats');
    if (a.positionals.length > 0) throw new UsageError('usage: guestnet stats [--control unix:PATH] [--compact]');
    const r = await controlRequest(controlPathFrom(a.flags.control, 'stats'), 'stats');
    out.write(`${a.bools.has('compact') ? JSON.stringify(r) : JSON.stringify(r, null, 2)}\n`);
    return 0;
  },
};
