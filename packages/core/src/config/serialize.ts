/**
 * Canonical config strings: validated options back to text.
 *
 * The canonical form is the key dialect, `backend=<type>,name=value,...`: options in schema order,
 * values equal to the default left out, bools as on/off, hostfwd/guestfwd in their canonical
 * spelling (hostfwd.ts), lists joined with `;`, repeatable options written once per item, and
 * every comma inside a value doubled (`,,`). For any options the validator produced,
 * `validateOptions(parseConfig(serializeConfig(type, x, specs)), specs, type)` deep-equals `x`.
 *
 * Limits: an item of a repeatable or list option cannot contain `;` (it would read back as two
 * items), except the command of a guestfwd `cmd:` target. The validator never produces one.
 */
import { GuestnetError, ErrorCode } from '../errors.ts';
import type { HostFwdRule } from '../backend.ts';
import type { OptionSpec } from '../schema.ts';
import type { GuestFwdRule } from './types.ts';
import { formatGuestFwd, formatHostFwd } from './hostfwd.ts';
import { parseConfig } from './parse.ts';
import { validateOptions } from './validate.ts';

function escape(s: string): string {
  return s.replaceAll(',', ',,');
}

/** Structural equality for option values (primitives, arrays, plain objects). */
function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => deepEqual(x, bb[i]));
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** One value of `spec` as text (unescaped). */
export function formatOptionValue(spec: OptionSpec, value: unknown): string {
  switch (spec.type) {
    case 'bool':
      return value ? 'on' : 'off';
    case 'hostfwd':
      return formatHostFwd(value as HostFwdRule);
    case 'guestfwd':
      return formatGuestFwd(value as GuestFwdRule);
    case 'list':
      return Array.isArray(value) ? value.map(String).join(';') : String(value);
    default:
      return String(value);
  }
}

/**
 * The canonical key-form string for `options` (as returned by the validator) of backend `type`.
 * Throws GUESTNET_BAD_CONFIG for an option the schema does not have.
 */
export function serializeConfig(type: string, options: Record<string, unknown>, specs: readonly OptionSpec[]): string {
  const known = new Set(specs.map((s) => s.name));
  for (const k of Object.keys(options)) {
    if (!known.has(k) && options[k] !== undefined) {
      throw new GuestnetError(ErrorCode.BadConfig, `option '${k}' is not in the schema of backend '${type}'`);
    }
  }
  const parts = [`backend=${escape(type)}`];
  for (const spec of specs) {
    const v = options[spec.name];
    if (v === undefined || (spec.default !== undefined && deepEqual(v, spec.default))) continue;
    if (spec.repeatable && Array.isArray(v)) {
      // A list-typed repeatable option reads back flattened, so one key holding all items is exact.
      if (spec.type === 'list') parts.push(`${spec.name}=${escape(formatOptionValue(spec, v))}`);
      else for (const item of v) parts.push(`${spec.name}=${escape(formatOptionValue(spec, item))}`);
      continue;
    }
    parts.push(`${spec.name}=${escape(formatOptionValue(spec, v))}`);
  }
  return parts.join(',');
}

/**
 * Parse, validate and re-serialize `input` for the backend named `descriptorName` with schema
 * `specs`: the canonical spelling of a config string in any dialect.
 */
export function canonicalize(input: string, specs: readonly OptionSpec[], descriptorName: string): string {
  const options = validateOptions(parseConfig(input), specs, descriptorName);
  return serializeConfig(descriptorName, options, specs);
}
