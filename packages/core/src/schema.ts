/**
 * Backend descriptors and option schemas.
 *
 * Each backend package exports `descriptor: BackendDescriptor`. The registry loads it by dynamic
 * import of `@guestnet/<type>`, the config validator checks options against `options`, and
 * `guestnet help <backend>` prints them.
 */
import type { NetBackend } from './backend.ts';
import type { GuestFwdRule } from './config/types.ts';
import type { HostFwdRule } from './backend.ts';

export type OptionType =
  | 'string'
  | 'int'
  | 'bool' // on/off, yes/no, true/false, 1/0
  | 'ipv4' // dotted quad
  | 'ipv6'
  | 'ipv4-cidr' // 10.0.2.0/24 (also 10.0.2.0 with a separate mask option)
  | 'ipv6-cidr'
  | 'ipv4-or-host' // 10.0.2.2, or a host part relative to net (".2" or "2")
  | 'mac' // 52:54:00:12:34:56
  | 'enum'
  | 'path'
  | 'hostfwd'
  | 'guestfwd'
  | 'list'; // a value with `;` separated items kept as string[]

export interface OptionSpec {
  name: string;
  type: OptionType;
  doc: string;
  /** Default value, already in the typed form; shown by `guestnet help`. */
  default?: unknown;
  /** The key may be given several times; values accumulate into an array. */
  repeatable?: boolean;
  /** For `int`. */
  min?: number;
  max?: number;
  /** For `enum`. */
  values?: readonly string[];
  /** Other spellings accepted (QEMU's `hostname` vs `vhostname`, …). */
  aliases?: readonly string[];
  /** The bhyve positional form puts its value here (`tap0` → ifname, `vale0:1` → port). */
  positional?: boolean;
}

/** Validated option values, keyed by canonical option name. */
export type BackendOptions = Record<string, unknown>;

/** Typed values produced by the validator for each option type. */
export interface OptionValueTypes {
  string: string;
  int: number;
  bool: boolean;
  hostfwd: HostFwdRule;
  guestfwd: GuestFwdRule;
  list: string[];
}

export interface BackendDescriptor {
  /** Canonical type name, also the package suffix: `@guestnet/<name>`. */
  name: string;
  /** Other type names that select this backend (`user` for slirp). */
  aliases?: readonly string[];
  /** One line for `guestnet --help`. */
  summary: string;
  options: readonly OptionSpec[];
  /** Create an un-initialised backend from validated options. */
  create(options: BackendOptions): NetBackend;
}
