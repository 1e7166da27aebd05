import { KNOWN_BACKENDS, loadBackend, type OptionSpec } from '@guestnet/core';
import { importer, type Command } from './command.ts';
import { UsageError } from '../usage-error.ts';

export async function usage(): Promise<string> {
  const { commands } = await import('./index.ts');
  const lines = ['usage: guestnet <command> [args]', '', 'commands:'];
  for (const c of Object.values(commands)) lines.push(`  ${c.synopsis.padEnd(28)} ${c.summary}`);
  lines.push('', 'backends (guestnet help <backend> for options):');
  for (const [name, info] of Object.entries(KNOWN_BACKENDS)) {
    const installed = await loadBackend(name, { importer }).then(
      () => '',
      () => `  [not installed: ${info.pkg}]`,
    );
    const alias = info.aliases.length ? ` (alias ${info.aliases.join(', ')})` : '';
    lines.push(`  ${name.padEnd(8)} ${info.summary}${alias}${installed}`);
  }
  lines.push(
    '',
    'config strings (three dialects, see docs/config-strings.md):',
    '  backend=slirp,hostfwd=tcp::2222-:22        key form',
    '  user,id=n0,net=10.0.2.0/24                QEMU -netdev form',
    '  tap0   vale0:1   slirp,hostfwd=tcp::1-:2;udp::3-:4    bhyve form',
    '',
  );
  return lines.join('\n');
}

function formatDefault(spec: OptionSpec): string {
  const d = spec.default;
  if (d === undefined || (Array.isArray(d) && d.length === 0)) return '';
  if (typeof d === 'boolean') return d ? 'on' : 'off';
  return String(d);
}

function typeLabel(spec: OptionSpec): string {
  if (spec.type === 'enum' && spec.values) return spec.values.join('|');
  if (spec.type === 'bool') return 'on|off';
  if (spec.type === 'int') return spec.min !== undefined && spec.max !== undefined ? `${spec.min}..${spec.max}` : 'int';
  return spec.type;
}

export const helpCommand: Command = {
  synopsis: 'help [backend]',
  summary: "this screen, or a backend's options",
  async run(args, { out }) {
    if (args.length === 0) {
      out.write(await usage());
      return 0;
    }
    if (args.length > 1) throw new UsageError('usage: guestnet help [backend]');
    const desc = await loadBackend(args[0]!, { importer });
    const lines = [`backend=${desc.name}${desc.aliases?.length ? ` (alias: ${desc.aliases.join(', ')})` : ''} — ${desc.summary}`, ''];
    const rows = desc.options.map((o) => ({
      name: `${o.name}${o.repeatable ? ' (repeatable)' : ''}`,
      type: typeLabel(o),
      def: formatDefault(o),
      doc: o.doc,
      aliases: o.aliases?.length ? ` Also: ${o.aliases.join(', ')}.` : '',
    }));
    const w1 = Math.max(6, ...rows.map((r) => r.name.length));
    const w2 = Math.max(4, ...rows.map((r) => r.type.length));
    const w3 = Math.max(7, ...rows.map((r) => r.def.length));
    lines.push(`  ${'option'.padEnd(w1)}  ${'type'.padEnd(w2)}  ${'default'.padEnd(w3)}  description`);
    for (const r of rows) lines.push(`  ${r.name.padEnd(w1)}  ${r.type.padEnd(w2)}  ${r.def.padEnd(w3)}  ${r.doc}${r.aliases}`);
    if (rows.length === 0) lines.push('  (no options)');
    out.write(`${lines.join('\n')}\n`);
    return 0;
  },
};
