/**
 * hostfwd / guestfwd rule grammar (QEMU's `-netdev user` spelling, extended).
 *
 *   hostfwd  = [proto ":"] host "-" guest
 *   proto    = "tcp" | "udp" | ""                  (default tcp)
 *   host     = "unix:" PATH | [addr] ":" port | port
 *   guest    = [addr] ":" port | port
 *   addr     = IPv4 dotted quad | "[" IPv6 "]"
 *   guestfwd = ["tcp"] ":" [addr] ":" port "-" target
 *   target   = "cmd:" COMMAND | "unix:" PATH | ["tcp:"] host ":" port      (host may be a DNS name)
 *
 * Differences from QEMU, on purpose:
 * - an empty host address means 127.0.0.1, not QEMU's INADDR_ANY: a forward is reachable from
 *   other machines only when `0.0.0.0` (or `[::]`) is written out;
 * - IPv6 addresses in brackets on either side (QEMU's hostfwd is IPv4 only);
 * - a unix-socket host side is QEMU's `unix:/path-:22` (QEMU ≥ 7.1 with libslirp ≥ 4.7, TCP only);
 *   `tcp:unix:/path-:22` is accepted too. The path must be absolute and fit sun_path (107 bytes);
 *   it may contain `-` (the host/guest separator is the last `-`, the guest side never has one);
 * - ports are decimal only (QEMU's strtol base 0 also takes 0x1F and 017).
 *
 * Errors are ConfigErrors pointing at the exact characters, mapped into the whole config string
 * through a {@link ValueSource}. Addresses are checked for syntax only; whether the guest address
 * lies in the guest network is the backend's business.
 */
import { ConfigError } from '../errors.ts';
import type { HostEndpoint, HostFwdRule } from '../backend.ts';
import type { GuestFwdRule, ValueSource } from './types.ts';
import { sourceOffset } from './parse.ts';

/** The host address an empty hostaddr stands for: loopback, so nothing is exposed by accident. */
export const DEFAULT_HOSTFWD_ADDR = '127.0.0.1';

/** sizeof(sockaddr_un.sun_path) - 1 on Linux. */
const MAX_UNIX_PATH = 107;

const HOSTFWD_HINT = 'hostfwd is [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport, e.g. tcp::2222-:22, tcp:[::1]:2222-[fec0::15]:22 or unix:/run/vm.sock-:22';
const GUESTFWD_HINT = 'guestfwd is [tcp]:guestaddr:guestport-TARGET with TARGET cmd:COMMAND, HOST:PORT or unix:PATH, e.g. tcp:10.0.2.100:80-127.0.0.1:8080';

// ---- addresses -----------------------------------------------------------------------------

/** Strict dotted quad: four decimal parts 0–255 without leading zeros (010 is octal to inet_aton). */
export function isIPv4(s: string): boolean {
  const parts = s.split('.');
  if (parts.length !== 4) return false;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255) return false;
  }
  return true;
}

/** RFC 4291 §2.2 text forms (`::`, `fec0::15`, `::ffff:1.2.3.4`); no zone id, no brackets. */
export function isIPv6(s: string): boolean {
  if (s.length < 2 || s.length > 45) return false;
  const gap = s.indexOf('::');
  if (gap >= 0 && s.indexOf('::', gap + 1) >= 0) return false;
  const groups = (t: string): string[] | null => (t === '' ? [] : t.split(':'));
  const head = gap >= 0 ? groups(s.slice(0, gap)) : groups(s);
  const tail = gap >= 0 ? groups(s.slice(gap + 2)) : [];
  if (!head || !tail) return false;
  const all = [...head, ...tail];
  let count = 0;
  for (let i = 0; i < all.length; i++) {
    const g = all[i]!;
    if (i === all.length - 1 && g.includes('.')) {
      if (!isIPv4(g)) return false;
      count += 2;
    } else if (/^[0-9A-Fa-f]{1,4}$/.test(g)) {
      count += 1;
    } else {
      return false;
    }
  }
  return gap >= 0 ? count <= 7 : count === 8;
}

/** An address as it appears in a rule: IPv6 in brackets. */
export function formatAddr(addr: string): string {
  return addr.includes(':') ? `[${addr}]` : addr;
}

// ---- errors --------------------------------------------------------------------------------

type Fail = (from: number, to: number, message: string, hint?: string) => ConfigError;

/** An error factory for spans [from, to) of `value`, mapped into the source input. */
function failer(value: string, src: ValueSource | undefined): Fail {
  const s: ValueSource = src ?? { input: value, offset: 0 };
  const at = (i: number): number => sourceOffset(s.input, s.offset, i, s.escaped ?? false);
  return (from, to, message, hint) => {
    const a = at(from);
    return new ConfigError(message, s.input, a, Math.max(1, at(Math.max(to, from + 1)) - a), hint);
  };
}

/** Index of the last ':' of `s` that is not inside brackets; -1 if none. Checks the brackets. */
function lastTopColon(s: string, base: number, fail: Fail, hint: string): number {
  let open = -1;
  let colon = -1;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '[') {
      if (open >= 0) throw fail(base + i, base + i + 1, "unexpected '[' inside brackets", hint);
      open = i;
    } else if (c === ']') {
      if (open < 0) throw fail(base + i, base + i + 1, "unmatched ']'", hint);
      open = -1;
    } else if (c === ':' && open < 0) {
      colon = i;
    }
  }
  if (open >= 0) throw fail(base + open, base + s.length, "unterminated '[' (missing ']')", hint);
  return colon;
}

/**
 * Parse an address: '' → undefined, `[v6]` → v6, IPv4 → itself. With `names`, a DNS host
 * name is also accepted (guestfwd targets). `base` is the index of `s` in the value.
 */
function parseAddr(s: string, base: number, fail: Fail, hint: string, names = false): string | undefined {
  if (s === '') return undefined;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0) throw fail(base, base + s.length, "unterminated '[' (missing ']')", hint);
    if (close !== s.length - 1) throw fail(base + close + 1, base + s.length, `unexpected '${s.slice(close + 1)}' after ']'`, hint);
    const inner = s.slice(1, close);
    if (!isIPv6(inner)) throw fail(base + 1, base + close, `bad IPv6 address '${inner}'`, hint);
    return inner.toLowerCase();
  }
  if (isIPv4(s)) return s;
  if (s.includes(':')) {
    throw fail(base, base + s.length, `IPv6 address '${s}' must be written in brackets`, `write [${s}]`);
  }
  if (names && /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/.test(s) && !/^[0-9.]+$/.test(s)) {
    return s;
  }
  throw fail(base, base + s.length, `bad address '${s}'`, hint);
}

function parsePort(s: string, base: number, min: number, what: string, fail: Fail, hint: string): number {
  if (s === '') throw fail(base, base + 1, `missing ${what}`, hint);
  if (!/^[0-9]{1,5}$/.test(s)) throw fail(base, base + s.length, `bad ${what} '${s}': expected a number ${min}–65535`, hint);
  const n = Number(s);
  if (n < min || n > 65535) throw fail(base, base + s.length, `${what} ${s} is out of range (${min}–65535)`, hint);
  return n;
}

function checkUnixPath(path: string, base: number, fail: Fail, hint: string): void {
  if (path === '') throw fail(base, base + 1, "missing socket path after 'unix:'", hint);
  if (!path.startsWith('/')) throw fail(base, base + path.length, `unix socket path '${path}' must be absolute`, 'start the path with "/"');
  const nul = path.indexOf('\0');
  if (nul >= 0) throw fail(base + nul, base + nul + 1, 'unix socket path contains a NUL character', hint);
  if (new TextEncoder().encode(path).length > MAX_UNIX_PATH) {
    throw fail(base, base + path.length, `unix socket path is longer than ${MAX_UNIX_PATH} bytes`, 'use a shorter path (sockaddr_un limits it)');
  }
}

/** `[addr:]port` at value[base, base+s.length). */
function parseInet(s: string, base: number, minPort: number, what: string, fail: Fail, hint: string, names = false): { addr: string | undefined; port: number } {
  const colon = lastTopColon(s, base, fail, hint);
  if (colon < 0) {
    if (s.startsWith('[')) throw fail(base + s.length, base + s.length + 1, `missing ':' and ${what} after the address`, hint);
    return { addr: undefined, port: parsePort(s, base, minPort, what, fail, hint) };
  }
  const addr = parseAddr(s.slice(0, colon), base, fail, hint, names);
  return { addr, port: parsePort(s.slice(colon + 1), base + colon + 1, minPort, what, fail, hint) };
}

/**
 * Split a leading protocol off a side: `tcp:`/`udp:` (any case); QEMU's empty protocol field
 * (`::1234`, `:10.0.0.1:80`) when two fields follow; an unknown word before two more fields is
 * an error. Returns the protocol (or undefined) and where the rest starts.
 */
function splitProto(s: string, fail: Fail, hint: string, allowed: readonly string[]): { proto: string | undefined; rest: number } {
  const lower = s.toLowerCase();
  for (const p of allowed) if (lower.startsWith(`${p}:`)) return { proto: p, rest: p.length + 1 };
  const m = /^([A-Za-z][A-Za-z0-9]*)?:/.exec(s);
  if (m) {
    // Only a protocol if a full [addr]:port remains after it; otherwise the field is the address.
    const after = s.slice(m[0].length);
    let depth = 0;
    let hasColon = false;
    for (const c of after) {
      if (c === '[') depth++;
      else if (c === ']') depth--;
      else if (c === ':' && depth <= 0) hasColon = true;
    }
    if (hasColon) {
      if (m[1] === undefined) return { proto: undefined, rest: 1 };
      if (m[1].toLowerCase() === 'unix') return { proto: undefined, rest: 0 };
      throw fail(0, m[1].length, `unknown protocol '${m[1]}' (${allowed.join(' or ')})`, hint);
    }
  }
  return { proto: undefined, rest: 0 };
}

// ---- hostfwd -------------------------------------------------------------------------------

/**
 * Parse one hostfwd rule. `src` locates `value` in the whole config string for error offsets;
 * without it errors point into `value` itself.
 */
export function parseHostFwd(value: string, src?: ValueSource): HostFwdRule {
  const fail = failer(value, src);
  const hint = HOSTFWD_HINT;
  if (value === '') throw fail(0, 1, 'empty host forward', hint);
  const dash = value.lastIndexOf('-');
  if (dash < 0) throw fail(0, value.length, `host forward '${value}' has no '-' between the host side and the guest side`, hint);

  const hostSide = value.slice(0, dash);
  const { proto: p, rest } = splitProto(hostSide, fail, hint, ['tcp', 'udp']);
  const proto: 'tcp' | 'udp' = p === 'udp' ? 'udp' : 'tcp';
  let host: HostEndpoint;
  if (hostSide.slice(rest).toLowerCase().startsWith('unix:')) {
    if (proto === 'udp') throw fail(0, 3, 'unix-socket forwards carry TCP streams only', 'drop the "udp:" (or write tcp:unix:PATH-…)');
    const path = hostSide.slice(rest + 5);
    checkUnixPath(path, rest + 5, fail, hint);
    host = { kind: 'unix', path };
  } else {
    const h = parseInet(hostSide.slice(rest), rest, 0, 'host port', fail, hint);
    host = { kind: 'inet', addr: h.addr ?? DEFAULT_HOSTFWD_ADDR, port: h.port };
  }

  const g = parseInet(value.slice(dash + 1), dash + 1, 1, 'guest port', fail, hint);
  return { proto, host, guestAddr: g.addr ?? '', guestPort: g.port };
}

/**
 * The canonical text of a rule: protocol and host address always written out
 * (`tcp:127.0.0.1:2222-:22`), IPv6 in brackets, unix host sides in QEMU's `unix:PATH-…` form.
 */
export function formatHostFwd(rule: HostFwdRule): string {
  const guest = `${rule.guestAddr === '' ? '' : formatAddr(rule.guestAddr)}:${rule.guestPort}`;
  if (rule.host.kind === 'unix') return `${rule.proto === 'udp' ? 'udp:' : ''}unix:${rule.host.path}-${guest}`;
  return `${rule.proto}:${formatAddr(rule.host.addr)}:${rule.host.port}-${guest}`;
}

// ---- guestfwd ------------------------------------------------------------------------------

/** Parse one guestfwd rule; see {@link parseHostFwd} for `src`. */
export function parseGuestFwd(value: string, src?: ValueSource): GuestFwdRule {
  const fail = failer(value, src);
  const hint = GUESTFWD_HINT;
  if (value === '') throw fail(0, 1, 'empty guest forward', hint);
  // The guest side never contains '-', so the first one separates; the target may have more.
  const dash = value.indexOf('-');
  if (dash < 0) throw fail(0, value.length, `guest forward '${value}' has no '-' before its target`, hint);
  const guestSide = value.slice(0, dash);
  if (/^udp:/i.test(guestSide)) throw fail(0, 3, 'guestfwd forwards TCP only', hint);
  const { rest } = splitProto(guestSide, fail, hint, ['tcp']);
  const g = parseInet(guestSide.slice(rest), rest, 1, 'guest port', fail, hint);
  const base = dash + 1;
  const target = value.slice(base);
  const lower = target.toLowerCase();
  let t: GuestFwdRule['target'];
  if (lower.startsWith('cmd:')) {
    const command = target.slice(4);
    if (command.trim() === '') throw fail(base + 4, base + 4 + Math.max(1, command.length), "missing command after 'cmd:'", hint);
    t = { kind: 'cmd', command };
  } else if (lower.startsWith('unix:')) {
    const path = target.slice(5);
    if (path === '') throw fail(base + 5, base + 6, "missing socket path after 'unix:'", hint);
    t = { kind: 'unix', path };
  } else {
    const off = lower.startsWith('tcp:') ? 4 : 0;
    const s = target.slice(off);
    if (s === '') throw fail(base + off, base + off + 1, 'missing forward target', hint);
    const colon = lastTopColon(s, base + off, fail, hint);
    if (colon < 0) throw fail(base + off, base + target.length, `forward target '${s}' needs HOST:PORT`, hint);
    if (colon === 0) throw fail(base + off, base + off + 1, 'missing target host before the port', hint);
    const addr = parseAddr(s.slice(0, colon), base + off, fail, hint, true)!;
    const port = parsePort(s.slice(colon + 1), base + off + colon + 1, 1, 'target port', fail, hint);
    t = { kind: 'inet', addr, port };
  }
  return { proto: 'tcp', guestAddr: g.addr ?? '', guestPort: g.port, target: t };
}

/** The canonical text of a guestfwd rule (`tcp:10.0.2.100:80-127.0.0.1:8080`). */
export function formatGuestFwd(rule: GuestFwdRule): string {
  const guest = `tcp:${rule.guestAddr === '' ? '' : formatAddr(rule.guestAddr)}:${rule.guestPort}`;
  const t = rule.target;
  if (t.kind === 'cmd') return `${guest}-cmd:${t.command}`;
  if (t.kind === 'unix') return `${guest}-unix:${t.path}`;
  // A host literally named cmd/unix/tcp would read as a prefix; QEMU's tcp: spelling disambiguates.
  const prefix = /^(cmd|unix|tcp)$/i.test(t.addr) ? 'tcp:' : '';
  return `${guest}-${prefix}${formatAddr(t.addr)}:${t.port}`;
}
