/**
 * `guestnet hostfwd add|remove|list`: manage the host forwards of a running `guestnet serve`
 * through its control socket (../serve/control.ts). RULE is QEMU's grammar
 * (`[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport`, an empty hostaddr is 127.0.0.1).
 *
 *   guestnet hostfwd add tcp::2222-:22        → hostfwd 1: tcp:127.0.0.1:2222-:22
 *   guestnet hostfwd list                     → ID  RULE                       STATE
 *   guestnet hostfwd remove 1                 (an id, or the rule as added)
 *
 * --control defaults to the socket `guestnet serve` creates next to its default listen socket.
 */
import { dirname, join } from 'node:path';
import { formatHostFwd, parseHostFwd, type HostFwdRule } from '@guestnet/core';
import type { Command } from './command.ts';
import { UsageError } from '../usage-error.ts';
import { parseArgs } from '../serve/args.ts';
import { controlRequest } from '../serve/control.ts';
import { defaultSocketPath, parseListen } from '../serve/listen.ts';

/** The control socket path from --control, or serve's default one. */
export function controlPathFrom(flag: string | undefined, command: string): string {
  if (flag === undefined) return join(dirname(defaultSocketPath().path), 'guestnet.ctl');
  const c = parseListen(flag, 'stream', '--control');
  if (c.kind !== 'unix') throw new UsageError(`${command}: --control must be unix:PATH`);
  return c.path;
}

interface Entry {
  id: number;
  proto: 'tcp' | 'udp';
  host_addr?: string;
  host_port?: number;
  host_path?: string;
  guest_addr: string;
  guest_port: number;
  active: boolean;
  error?: string;
}

function entryRule(e: Entry): HostFwdRule {
  const host = e.host_path !== undefined ? { kind: 'unix' as const, path: e.host_path } : { kind: 'inet' as const, addr: e.host_addr!, port: e.host_port! };
  return { proto: e.proto, host, guestAddr: e.guest_addr, guestPort: e.guest_port };
}

async function list(path: string): Promise<Entry[]> {
  const r = (await controlRequest(path, 'list_hostfwd')) as { entries: Entry[] };
  return r.entries;
}

export const hostfwdCommand: Command = {
  synopsis: 'hostfwd add RULE|remove ID|list',
  summary: 'add, remove or list host forwards of a running `guestnet serve` (--control unix:PATH)',
  async run(args, { out }) {
    const a = parseArgs(args, { values: ['control'], booleans: ['json'] }, 'hostfwd');
    const [verb, arg, ...extra] = a.positionals;
    const usage = 'usage: guestnet hostfwd add RULE | remove ID|RULE | list  [--control unix:PATH] [--json]';
    if (extra.length > 0 || verb === undefined) throw new UsageError(usage);
    const path = controlPathFrom(a.flags.control, 'hostfwd');
    const json = a.bools.has('json');
    switch (verb) {
      case 'add': {
        if (arg === undefined) throw new UsageError(usage);
        const rule = parseHostFwd(arg);
        const r = (await controlRequest(path, 'add_hostfwd', { rule: formatHostFwd(rule) })) as { id: number };
        const entry = (await list(path)).find((e) => e.id === r.id);
        if (json) out.write(`${JSON.stringify(entry ?? r)}\n`);
        else out.write(`hostfwd ${r.id}: ${formatHostFwd(entry ? entryRule(entry) : rule)}${entry && !entry.active ? ' (pending: no client connected)' : ''}\n`);
        return 0;
      }
      case 'remove': {
        if (arg === undefined) throw new UsageError(usage);
        let id: number;
        if (/^\d+$/.test(arg)) id = Number(arg);
        else {
          const want = formatHostFwd(parseHostFwd(arg));
          const found = (await list(path)).find((e) => formatHostFwd(entryRule(e)) === want);
          if (!found) throw new UsageError(`hostfwd: no rule ${want} (see guestnet hostfwd list)`);
          id = found.id;
        }
        await controlRequest(path, 'remove_hostfwd', { id });
        if (!json) out.write(`hostfwd ${id} removed\n`);
        else out.write('{}\n');
        return 0;
      }
      case 'list': {
        if (arg !== undefined) throw new UsageError(usage);
        const entries = await list(path);
        if (json) {
          out.write(`${JSON.stringify(entries)}\n`);
          return 0;
        }
        out.write(`${'ID'.padEnd(4)}${'RULE'.padEnd(44)}STATE\n`);
        for (const e of entries) {
          out.write(`${String(e.id).padEnd(4)}${formatHostFwd(entryRule(e)).padEnd(44)}${e.active ? 'active' : e.error ? `failed: ${e.error}` : 'pending'}\n`);
        }
        return 0;
      }
      default:
        throw new UsageError(usage);
    }
  },
};
