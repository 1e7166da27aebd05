/**
 * A small flag parser for the serve / hostfwd / stats commands: `--name value`, `--name=value`,
 * boolean flags, positionals; an unknown flag is a usage error that names the known ones.
 */
import { UsageError } from '../usage-error.ts';

export interface FlagSpec {
  /** Flags that take a value. */
  values: readonly string[];
  /** Flags that do not. */
  booleans: readonly string[];
}

export interface ParsedArgs {
  flags: Record<string, string>;
  bools: Set<string>;
  positionals: string[];
}

export function parseArgs(args: string[], spec: FlagSpec, command: string): ParsedArgs {
  const out: ParsedArgs = { flags: {}, bools: new Set(), positionals: [] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      out.positionals.push(...args.slice(i + 1));
      break;
    }
    if (!a.startsWith('--') || a === '--') {
      out.positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    if (spec.booleans.includes(name)) {
      if (eq >= 0) throw new UsageError(`${command}: --${name} takes no value`);
      out.bools.add(name);
    } else if (spec.values.includes(name)) {
      const v = eq >= 0 ? a.slice(eq + 1) : args[++i];
      if (v === undefined) throw new UsageError(`${command}: --${name} needs a value`);
      out.flags[name] = v;
    } else {
      const known = [...spec.values, ...spec.booleans].map((n) => `--${n}`).join(', ');
      throw new UsageError(`${command}: unknown option '--${name}' (known: ${known})`);
    }
  }
  return out;
}
