/**
 * Option validation: a ParsedConfig checked against a backend's schema (its OptionSpecs) and
 * turned into typed values keyed by canonical option name.
 *
 * Rules (QEMU's where QEMU has one):
 * - an unknown key is an error with a "did you mean" over names and aliases; aliases map to
 *   the canonical name;
 * - a repeatable key accumulates (`hostfwd=…,hostfwd=…`), and a bhyve `;` list inside one value
 *   gives several items (`hostfwd=tcp::1-:1;udp::2-:2`); a guestfwd `cmd:` target runs to the end
 *   of the value, so a shell command may contain `;`. Empty items between `;` are skipped;
 * - a repeated scalar: the last one wins; a bare flag is `true` for a bool and an error otherwise;
 * - the bhyve positional word (`tap0`, `vale0:1`) goes to the spec marked `positional`, as if it
 *   had been written first, so an explicit key later overrides it;
 * - absent options get their default (copied, so callers may mutate the result).
 *
 * Conversions per OptionType: int (decimal, min/max), bool (on/off yes/no true/false 1/0), ipv4,
 * ipv6 (brackets optional, stored lower-case without them), ipv4-cidr / ipv6-cidr (`addr/len`,
 * IPv4 also `addr/255.255.255.0`, stored as `/len`; a bare address is kept for backends with a
 * separate mask option), ipv4-or-host (`10.0.2.2`, `.2`, `2`, kept as given for the backend to
 * resolve against its network), mac (`:` or `-` separated, stored lower-case with `:`), enum,
 * path, string, hostfwd / guestfwd (hostfwd.ts), list (`;`-separated, empty items dropped).
 */
import { ConfigError } from '../errors.ts';
import type { OptionSpec } from '../schema.ts';
import type { ParsedConfig, ValueSource } from './types.ts';
import { sourceOffset } from './parse.ts';
import { isIPv4, isIPv6, parseGuestFwd, parseHostFwd } from './hostfwd.ts';
import { suggest } from './suggest.ts';

const BOOL_WORDS: Readonly<Record<string, boolean>> = {
  on: true, yes: true, true: true, '1': true,
  off: false, no: false, false: false, '0': false,
};

/** Where a value (or a `;` item of it) sits in the input. */
interface Located {
  text: string;
  src: ValueSource;
}

function fail(at: Located, from: number, to: number, message: string, hint?: string): ConfigError {
  const { input, offset, escaped } = at.src;
  const a = sourceOffset(input, offset, from, escaped ?? false);
  const b = sourceOffset(input, offset, Math.max(to, from + 1), escaped ?? false);
  return new ConfigError(message, input, a, Math.max(1, b - a), hint);
}

/** Split a value at `;` into located items. */
function splitItems(v: Located, cmdRunsToEnd: boolean, keepSingleEmpty: boolean): Located[] {
  const out: Located[] = [];
  const { text, src } = v;
  let s = 0;
  for (let i = 0; i <= text.length; i++) {
    if (i < text.length && text[i] !== ';') continue;
    let item = text.slice(s, i);
    if (cmdRunsToEnd) {
      // guestfwd: once the target is cmd:…, the rest of the value is the command.
      const dash = item.indexOf('-');
      if (dash >= 0 && item.slice(dash + 1, dash + 5).toLowerCase() === 'cmd:') {
        item = text.slice(s);
        i = text.length;
      }
    }
    out.push({ text: item, src: { input: src.input, offset: sourceOffset(src.input, src.offset, s, src.escaped ?? false), escaped: src.escaped ?? false } });
    s = i + 1;
  }
  const nonEmpty = out.filter((x) => x.text !== '');
  // A lone empty value stays (an empty string option, or an error for hostfwd); `a;;b` drops the gap.
  return nonEmpty.length === 0 && keepSingleEmpty && out.length === 1 ? out : nonEmpty;
}

function typeHint(spec: OptionSpec): string {
  switch (spec.type) {
    case 'int':
      return `an integer${spec.min !== undefined || spec.max !== undefined ? ` ${spec.min ?? '…'}–${spec.max ?? '…'}` : ''}`;
    case 'bool':
      return 'on/off, yes/no, true/false or 1/0';
    case 'ipv4':
      return 'an IPv4 address like 10.0.2.2';
    case 'ipv6':
      return 'an IPv6 address like fec0::2';
    case 'ipv4-cidr':
      return 'an IPv4 network like 10.0.2.0/24';
    case 'ipv6-cidr':
      return 'an IPv6 prefix like fec0::/64';
    case 'ipv4-or-host':
      return 'an IPv4 address (10.0.2.2) or a host part of the network (.2 or 2)';
    case 'mac':
      return 'a unicast MAC address like 52:54:00:12:34:56';
    case 'enum':
      return `one of: ${(spec.values ?? []).join(', ')}`;
    case 'list':
      return 'items separated by ";"';
    default:
      return `a ${spec.type}`;
  }
}

function checkPrefix(v: Located, from: number, max: number, name: string): number {
  const s = v.text.slice(from);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(s) || Number(s) > max) {
    throw fail(v, from, v.text.length, `bad prefix length '${s}' for ${name}: expected 0–${max}`);
  }
  return Number(s);
}

/** A dotted netmask to its prefix length, or -1 when its ones are not contiguous. */
function maskToPrefix(mask: string): number {
  if (!isIPv4(mask)) return -1;
  let n = 0;
  for (const p of mask.split('.')) n = n * 256 + Number(p);
  const host = ~n >>> 0; // the host bits must be a run of low ones: host + 1 is a power of two
  if ((host & (host + 1)) !== 0) return -1;
  return Math.clz32(host);
}

/** Convert one (non-flag) value for `spec`. */
function convert(spec: OptionSpec, v: Located, key: string): unknown {
  const t = v.text;
  const bad = (msg?: string): ConfigError => fail(v, 0, t.length, msg ?? `invalid value '${t}' for ${key}: expected ${typeHint(spec)}`, `${key} takes ${typeHint(spec)}`);
  switch (spec.type) {
    case 'string':
    case 'path':
      return t;
    case 'int': {
      if (!/^-?[0-9]+$/.test(t)) throw bad();
      const n = Number(t);
      if (!Number.isSafeInteger(n)) throw bad(`${key}=${t} is too large`);
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
        throw bad(`${key}=${t} is out of range (${spec.min ?? '…'}–${spec.max ?? '…'})`);
      }
      return n;
    }
    case 'bool': {
      const b = BOOL_WORDS[t.toLowerCase()];
      if (b === undefined || !Object.hasOwn(BOOL_WORDS, t.toLowerCase())) throw bad();
      return b;
    }
    case 'ipv4':
      if (!isIPv4(t)) throw bad();
      return t;
    case 'ipv6': {
      const inner = t.startsWith('[') && t.endsWith(']') ? t.slice(1, -1) : t;
      if (!isIPv6(inner)) throw bad();
      return inner.toLowerCase();
    }
    case 'ipv4-cidr': {
      const slash = t.indexOf('/');
      const addr = slash < 0 ? t : t.slice(0, slash);
      if (!isIPv4(addr)) throw fail(v, 0, addr.length || 1, `invalid address '${addr}' in ${key}: expected ${typeHint(spec)}`, `${key} takes ${typeHint(spec)}`);
      if (slash < 0) return t;
      const suffix = t.slice(slash + 1);
      if (suffix.includes('.')) {
        const len = maskToPrefix(suffix);
        if (len < 0) throw fail(v, slash + 1, t.length, `bad netmask '${suffix}' for ${key}`, 'a netmask is contiguous ones (255.255.255.0) or a prefix length (24)');
        return `${addr}/${len}`;
      }
      return `${addr}/${checkPrefix(v, slash + 1, 32, key)}`;
    }
    case 'ipv6-cidr': {
      const slash = t.indexOf('/');
      const addr = slash < 0 ? t : t.slice(0, slash);
      if (!isIPv6(addr)) throw fail(v, 0, addr.length || 1, `invalid address '${addr}' in ${key}: expected ${typeHint(spec)}`, `${key} takes ${typeHint(spec)}`);
      if (slash < 0) return addr.toLowerCase();
      return `${addr.toLowerCase()}/${checkPrefix(v, slash + 1, 128, key)}`;
    }
    case 'ipv4-or-host': {
      if (isIPv4(t)) return t;
      // A host part relative to the network: "2", ".2", ".0.2" (each part a byte), or a host number.
      if (/^\.(0|[1-9][0-9]{0,2})(\.(0|[1-9][0-9]{0,2})){0,2}$/.test(t) && t.slice(1).split('.').every((p) => Number(p) <= 255)) return t;
      if (/^(0|[1-9][0-9]{0,9})$/.test(t) && Number(t) <= 0xffffffff) return t;
      throw bad();
    }
    case 'mac': {
      const m = /^([0-9A-Fa-f]{2})([:-])([0-9A-Fa-f]{2})\2([0-9A-Fa-f]{2})\2([0-9A-Fa-f]{2})\2([0-9A-Fa-f]{2})\2([0-9A-Fa-f]{2})$/.exec(t);
      if (!m) throw bad();
      // An interface address cannot be a group address (I/G bit, IEEE 802 §8.2).
      if (parseInt(m[1]!, 16) & 1) throw bad(`${key}=${t} is a multicast address`);
      return [m[1], m[3], m[4], m[5], m[6], m[7]].join(':').toLowerCase();
    }
    case 'enum': {
      const values = spec.values ?? [];
      if (values.includes(t)) return t;
      const ci = values.find((x) => x.toLowerCase() === t.toLowerCase());
      if (ci !== undefined) return ci;
      const s = suggest(t, values);
      throw fail(v, 0, t.length, `invalid value '${t}' for ${key}${s ? ` — did you mean '${s}'?` : ''}`, typeHint(spec));
    }
    case 'hostfwd':
      return parseHostFwd(t, v.src);
    case 'guestfwd':
      return parseGuestFwd(t, v.src);
    case 'list':
      return splitItems(v, false, false).map((x) => x.text);
    default: {
      const never: never = spec.type;
      throw bad(`option ${key} has an unknown type '${String(never)}' in the backend's schema`);
    }
  }
}

function cloneDefault(v: unknown): unknown {
  return v !== null && typeof v === 'object' ? structuredClone(v) : v;
}

/**
 * Check every option of `parsed` against `specs` and return typed values by canonical name,
 * defaults filled in. Throws ConfigError pointing at the offending key or value.
 */
export function validateOptions(parsed: ParsedConfig, specs: readonly OptionSpec[], backendName: string): Record<string, unknown> {
  const input = parsed.input;
  const byName = new Map<string, OptionSpec>();
  for (const s of specs) byName.set(s.name, s);
  for (const s of specs) for (const a of s.aliases ?? []) if (!byName.has(a)) byName.set(a, s);

  const out: Record<string, unknown> = {};
  const started = new Set<string>(); // repeatable options seen (their default is replaced, not appended to)

  const apply = (spec: OptionSpec, key: string, v: Located | undefined, keyOffset: number): void => {
    if (v === undefined) {
      if (spec.type !== 'bool') {
        throw new ConfigError(`option '${key}' needs a value`, input, keyOffset, key.length, `write ${key}=VALUE with VALUE ${typeHint(spec)}`);
      }
      if (spec.repeatable) {
        if (!started.has(spec.name)) out[spec.name] = [];
        started.add(spec.name);
        (out[spec.name] as unknown[]).push(true);
      } else {
        out[spec.name] = true;
      }
      return;
    }
    if (!spec.repeatable) {
      out[spec.name] = convert(spec, v, key);
      return;
    }
    if (!started.has(spec.name)) out[spec.name] = [];
    started.add(spec.name);
    const arr = out[spec.name] as unknown[];
    const items = spec.type === 'list' ? [v] : splitItems(v, spec.type === 'guestfwd', true);
    for (const item of items) {
      const x = convert(spec, item, key);
      if (spec.type === 'list') arr.push(...(x as unknown[]));
      else arr.push(x);
    }
  };

  if (parsed.positional !== undefined) {
    const off = parsed.positionalOffset ?? parsed.typeOffset;
    const spec = specs.find((s) => s.positional);
    if (!spec) {
      throw new ConfigError(`backend '${backendName}' takes no device name, but '${parsed.positional}' was given`, input, off, parsed.positional.length, `write its options as key=value (see \`guestnet help ${backendName}\`)`);
    }
    apply(spec, spec.name, { text: parsed.positional, src: { input, offset: off, escaped: false } }, off);
  }

  for (const opt of parsed.options) {
    const spec = byName.get(opt.key);
    if (!spec) {
      const names = [...specs.map((s) => s.name), ...specs.flatMap((s) => s.aliases ?? [])];
      const s = suggest(opt.key, names);
      throw new ConfigError(
        `unknown option '${opt.key}'${s ? ` — did you mean '${s}'?` : ''}`,
        input,
        opt.keyOffset,
        opt.key.length,
        names.length ? `options of ${backendName}: ${specs.map((x) => x.name).join(', ')}` : `backend '${backendName}' takes no options`,
      );
    }
    const v = opt.value === undefined ? undefined : { text: opt.value, src: { input, offset: opt.valueOffset, escaped: true } };
    apply(spec, opt.key, v, opt.keyOffset);
  }

  for (const s of specs) {
    if (!(s.name in out) && s.default !== undefined) out[s.name] = cloneDefault(s.default);
  }
  return out;
}
