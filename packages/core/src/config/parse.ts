/**
 * The config-string tokenizer: one grammar for the three dialects users already type.
 *
 *   key    backend=slirp,hostfwd=tcp::1234-:22,hostfwd=udp::5353-:53
 *   QEMU   user,id=n0,net=10.0.2.0/24,hostfwd=tcp::1234-:22,restrict
 *   bhyve  slirp,hostfwd=tcp::1234-:22;udp::5353-:53   tap0   vmnet0   vale0:1   netmap:vale0:1
 *
 * Theory of operation: the input is cut at every `,` that is not part of a `,,` pair (QEMU's
 * escape for a literal comma; pairs are taken greedily left to right, as QEMU's opts parser
 * does). Each piece is `key=value` (split at the first `=`; values may contain `=`) or a bare
 * word. `backend=` anywhere names the type and makes every bare word a flag; without it the
 * first piece must be a bare word naming the type or a bhyve device, whose prefix selects the
 * type as bhyve's net_backends does (`tapN`/`vmnetN` → tap, `vale…`, `netmap:…`, `x{N`/`x}N`
 * pipes → netmap). `id=` is QEMU's netdev id and is kept apart from the options.
 *
 * Values are opaque here: they are taken verbatim (apart from `,,`) so any string survives a
 * serialize/parse round trip; their syntax (addresses, brackets, `;` lists) is checked by the
 * validator against the backend's schema, with offsets mapped back into this input. Keys, the
 * type and flags are checked here, and every error is a ConfigError with the exact offset.
 *
 * Not supported: bhyve's netgraph backend (a clear error), QEMU's `type=` key and its
 * deprecated `noFLAG` spelling, quoting other than `,,`.
 */
import { ConfigError } from '../errors.ts';
import type { Dialect, ParsedConfig, RawOption } from './types.ts';

const COMMA = 0x2c;

/** Option names: QEMU's are letters, digits, `-`, `_` and `.` (`ipv6-net`, `addr.type`). */
const KEY_RE = /^[A-Za-z][A-Za-z0-9_.-]*$/;
const KEY_CHAR = /[A-Za-z0-9_.-]/;
/** Backend types: a name, or an npm package for third-party backends (`@acme/guestnet-vde`). */
const TYPE_CHAR = /[A-Za-z0-9@/._-]/;
/** Device words may also carry `:` (vale0:1) and netmap pipe braces (pipe0{1). */
const DEVICE_CHAR = /[A-Za-z0-9@/._:{}-]/;
/** QEMU's netdev id rule (id_wellformed): a letter, then letters, digits, `-`, `.`, `_`. */
const ID_RE = /^[A-Za-z][A-Za-z0-9_.-]*$/;

/** Netdev types QEMU knows; seeing one of these first suggests the QEMU dialect. */
const QEMU_TYPES: ReadonlySet<string> = new Set([
  'user', 'tap', 'bridge', 'l2tpv3', 'socket', 'stream', 'dgram', 'vde', 'netmap', 'vhost-user',
  'vhost-vdpa', 'af-xdp', 'passt', 'vmnet-host', 'vmnet-shared', 'vmnet-bridged', 'hubport',
]);

const TYPE_HINT = 'start with the backend type (slirp,… / user,… / tap0 / vale0:1) or give backend=TYPE';

/**
 * Map an index into a value (after `,,` unescaping when `escaped`) back to an index into the
 * input the value was cut from. Clamped to the input's length so carets never run off the end.
 */
export function sourceOffset(input: string, start: number, index: number, escaped = false): number {
  if (!escaped) return Math.min(start + index, input.length);
  let j = start;
  for (let k = 0; k < index && j < input.length; k++) {
    j += input.charCodeAt(j) === COMMA && input.charCodeAt(j + 1) === COMMA ? 2 : 1;
  }
  return Math.min(j, input.length);
}

/** Text for an error message, with control characters made visible. */
function show(s: string): string {
  return s.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

interface Piece {
  start: number;
  end: number;
}

/** Cut the input at lone commas. */
function split(input: string): Piece[] {
  const pieces: Piece[] = [];
  let s = 0;
  let i = 0;
  while (i < input.length) {
    if (input.charCodeAt(i) === COMMA) {
      if (input.charCodeAt(i + 1) === COMMA) {
        i += 2;
        continue;
      }
      pieces.push({ start: s, end: i });
      s = i + 1;
    }
    i++;
  }
  pieces.push({ start: s, end: input.length });
  return pieces;
}

function unescape(raw: string): string {
  return raw.includes(',,') ? raw.replaceAll(',,', ',') : raw;
}

interface Device {
  type: string;
  positional?: string;
  positionalOffset?: number;
}

/**
 * Classify the type word: a plain type (`slirp`, `user`, `@acme/x`) or a bhyve device name whose
 * prefix selects the type. `raw` is exactly the input at `off` (a `,,` inside is a bad character).
 */
function classify(input: string, raw: string, off: number): Device {
  if (raw.length === 0) throw new ConfigError('missing backend type', input, off, 1, TYPE_HINT);
  for (let i = 0; i < raw.length; i++) {
    if (!DEVICE_CHAR.test(raw[i]!)) {
      const what = i === 0 ? `unexpected '${show(raw[i]!)}' where the backend type should be` : `unexpected '${show(raw.slice(i))}' after '${raw.slice(0, i)}'`;
      throw new ConfigError(what, input, off + i, raw.length - i, 'a backend type or device name is letters, digits and - _ . (plus : { } in netmap port names); separate options with ","');
    }
  }
  const lower = raw.toLowerCase();
  if (lower.startsWith('netgraph')) {
    throw new ConfigError("bhyve's netgraph backend is not supported", input, off, raw.length, 'use a TAP device (tap0) or a netmap/VALE port (vale0:1) instead');
  }
  if (lower.startsWith('netmap:')) {
    if (raw.length === 7) throw new ConfigError("missing port name after 'netmap:'", input, off + 6, 1, 'e.g. netmap:vale0:1 or netmap:eth0');
    return { type: 'netmap', positional: raw.slice(7), positionalOffset: off + 7 };
  }
  // bhyve: names starting with "vale" are VALE switch ports; netmap pipes are name{N / name}N.
  if ((lower.startsWith('vale') && raw.length > 4) || raw.includes('{') || raw.includes('}')) {
    return { type: 'netmap', positional: raw, positionalOffset: off };
  }
  // bhyve: "tap…" and "vmnet…" name TAP devices. vmnet needs digits: QEMU's vmnet-shared & co are types.
  if (lower.startsWith('tap') && raw.length > 3) return { type: 'tap', positional: raw, positionalOffset: off };
  if (/^vmnet\d+$/.test(lower)) return { type: 'tap', positional: raw, positionalOffset: off };
  for (let i = 0; i < raw.length; i++) {
    if (!TYPE_CHAR.test(raw[i]!)) {
      throw new ConfigError(`unexpected '${show(raw.slice(i))}' after backend type '${raw.slice(0, i)}'`, input, off + i, raw.length - i, 'only netmap ports (vale0:1, netmap:eth0) carry ":" or braces; separate options with ","');
    }
  }
  if (!/^[a-z@]/.test(lower)) throw new ConfigError(`backend type '${raw}' must start with a letter`, input, off, raw.length, TYPE_HINT);
  return { type: lower };
}

/** Reject a bad character in an option name or flag, pointing at it. */
function checkKey(input: string, key: string, off: number): void {
  if (KEY_RE.test(key)) return;
  if (!/^[A-Za-z]/.test(key)) {
    throw new ConfigError(`option name '${key}' must start with a letter`, input, off, 1, 'options are written name=value or as a bare flag name, separated by ","');
  }
  for (let i = 0; i < key.length; i++) {
    if (!KEY_CHAR.test(key[i]!)) {
      const c = key[i]!;
      const hint = c === ',' ? "',,' is an escaped comma; it belongs in values only" : /\s/.test(c) ? 'option names cannot contain spaces (values can)' : 'option names are letters, digits and - _ .';
      throw new ConfigError(`unexpected '${show(c)}' in option name '${key}'`, input, off + i, 1, hint);
    }
  }
}

/**
 * Parse a config string into its type and raw options. Throws only {@link ConfigError}, with
 * the offset and length of the offending characters.
 */
export function parseConfig(input: string): ParsedConfig {
  if (typeof input !== 'string') throw new ConfigError('config must be a string', String(input), 0, 1);
  if (input.length === 0) throw new ConfigError('missing backend type', input, 0, 1, TYPE_HINT);
  const pieces = split(input);
  const hasBackendKey = pieces.some((p) => input.startsWith('backend=', p.start) && p.end >= p.start + 8);

  let device: Device | undefined;
  let typeOffset = 0;
  let backendKeyOffset = -1;
  let id: string | undefined;
  const options: RawOption[] = [];

  for (let n = 0; n < pieces.length; n++) {
    const { start, end } = pieces[n]!;
    const raw = input.slice(start, end);
    if (raw.length === 0) {
      if (start === 0) throw new ConfigError(hasBackendKey ? "stray ',' at the start" : 'missing backend type', input, 0, 1, hasBackendKey ? 'remove the leading comma' : TYPE_HINT);
      throw new ConfigError(end === input.length ? "trailing ','" : "stray ','", input, start - 1, 1, 'remove the extra comma (a literal comma inside a value is written ",,")');
    }
    const eq = raw.indexOf('=');
    if (eq === 0) throw new ConfigError("'=' with no option name before it", input, start, 1, 'write name=value');
    if (eq < 0) {
      if (n === 0 && !hasBackendKey) {
        device = classify(input, raw, start);
        typeOffset = start;
        continue;
      }
      checkKey(input, raw, start);
      options.push({ key: raw, value: undefined, keyOffset: start, valueOffset: -1 });
      continue;
    }
    const key = input.slice(start, start + eq);
    const valueOffset = start + eq + 1;
    if (n === 0 && !hasBackendKey) {
      throw new ConfigError('missing backend type', input, start, eq, TYPE_HINT);
    }
    checkKey(input, key, start);
    if (key === 'backend') {
      if (backendKeyOffset >= 0) {
        throw new ConfigError("duplicate 'backend='", input, start, 7, `the backend type is given once (first at offset ${backendKeyOffset})`);
      }
      backendKeyOffset = start;
      if (valueOffset === end) throw new ConfigError("missing backend type after 'backend='", input, start, eq + 1, 'e.g. backend=slirp');
      device = classify(input, input.slice(valueOffset, end), valueOffset);
      typeOffset = valueOffset;
      continue;
    }
    const value = unescape(input.slice(valueOffset, end));
    if (key === 'id') {
      if (!ID_RE.test(value)) {
        throw new ConfigError(`invalid id '${value}'`, input, valueOffset, Math.max(1, end - valueOffset), 'an id is a letter followed by letters, digits, "-", "." or "_"');
      }
      id = value;
      continue;
    }
    options.push({ key, value, keyOffset: start, valueOffset });
  }

  // Unreachable in practice (the first piece or backend= always sets it), kept for the types.
  if (!device) throw new ConfigError('missing backend type', input, 0, 1, TYPE_HINT);

  const parsed: ParsedConfig = {
    type: device.type,
    typeOffset,
    dialect: detectDialect(input, hasBackendKey, device, id, options),
    options,
    input,
  };
  if (id !== undefined) parsed.id = id;
  if (device.positional !== undefined) {
    parsed.positional = device.positional;
    parsed.positionalOffset = device.positionalOffset ?? typeOffset;
  }
  return parsed;
}

/**
 * Which dialect the string was written in. Only serialization cares: `backend=` → key;
 * a bhyve device name → bhyve; QEMU-only syntax (`id=`, `,,`) or a QEMU netdev type → qemu;
 * a `;` list (which QEMU never uses) or anything else → bhyve.
 */
function detectDialect(input: string, hasBackendKey: boolean, device: Device, id: string | undefined, options: readonly RawOption[]): Dialect {
  if (hasBackendKey) return 'key';
  if (device.positional !== undefined) return 'bhyve';
  if (id !== undefined || input.includes(',,')) return 'qemu';
  if (options.some((o) => o.value?.includes(';'))) return 'bhyve';
  return QEMU_TYPES.has(device.type) ? 'qemu' : 'bhyve';
}
