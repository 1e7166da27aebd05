import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { canonicalize, serializeConfig } from './serialize.ts';
import { parseConfig } from './parse.ts';
import { validateOptions } from './validate.ts';
import { GuestnetError } from '../errors.ts';
import type { OptionSpec } from '../schema.ts';
import type { HostFwdRule } from '../backend.ts';
import type { GuestFwdRule } from './types.ts';

const slirp: readonly OptionSpec[] = [
  { name: 'net', type: 'ipv4-cidr', default: '10.0.2.0/24', doc: 'guest network', aliases: ['ipv4-net'] },
  { name: 'host', type: 'ipv4-or-host', default: '10.0.2.2', doc: 'gateway' },
  { name: 'dns', type: 'ipv4-or-host', default: '10.0.2.3', doc: 'virtual DNS' },
  { name: 'ipv6-host', type: 'ipv6', default: 'fec0::2', doc: 'IPv6 gateway' },
  { name: 'restrict', type: 'bool', default: false, doc: 'isolate the guest' },
  { name: 'ipv6', type: 'bool', default: true, doc: 'enable IPv6' },
  { name: 'hostname', type: 'string', default: '', doc: 'DHCP hostname', aliases: ['vhostname'] },
  { name: 'dnssearch', type: 'string', repeatable: true, default: [], doc: 'search domains' },
  { name: 'hostfwd', type: 'hostfwd', repeatable: true, default: [], doc: 'host forwards' },
  { name: 'guestfwd', type: 'guestfwd', repeatable: true, default: [], doc: 'guest forwards' },
  { name: 'mtu', type: 'int', min: 68, max: 65521, default: 1500, doc: 'IP MTU' },
  { name: 'mac', type: 'mac', default: '52:55:0a:00:02:02', doc: 'gateway MAC' },
  { name: 'mode', type: 'enum', values: ['nat', 'bridge'], default: 'nat', doc: 'mode' },
  { name: 'tftp', type: 'path', doc: 'TFTP root (no default)' },
  { name: 'allow', type: 'list', default: [], doc: 'allowed CIDRs' },
];

const tap: readonly OptionSpec[] = [
  { name: 'ifname', type: 'string', positional: true, doc: 'TAP device' },
  { name: 'vnet-hdr', type: 'bool', default: true, doc: 'use IFF_VNET_HDR' },
];

const roundTrip = (x: Record<string, unknown>, specs: readonly OptionSpec[] = slirp, type = 'slirp'): Record<string, unknown> =>
  validateOptions(parseConfig(serializeConfig(type, x, specs)), specs, type);

describe('serializeConfig', () => {
  it('writes only the type when every option is at its default', () => {
    expect(serializeConfig('slirp', validateOptions(parseConfig('slirp'), slirp, 'slirp'), slirp)).toBe('backend=slirp');
  });

  it('writes options in schema order, bools as on/off, repeatables repeated', () => {
    const x = validateOptions(parseConfig('user,mtu=9000,hostfwd=udp::5353-:53;tcp::1234-:22,restrict,ipv6=no,dnssearch=b.example,dnssearch=a.example'), slirp, 'slirp');
    expect(serializeConfig('slirp', x, slirp)).toBe(
      'backend=slirp,restrict=on,ipv6=off,dnssearch=b.example,dnssearch=a.example,hostfwd=udp:127.0.0.1:5353-:53,hostfwd=tcp:127.0.0.1:1234-:22,mtu=9000',
    );
  });

  it('doubles commas inside values', () => {
    const s = serializeConfig('slirp', { hostname: 'a,b', guestfwd: [{ proto: 'tcp', guestAddr: '10.0.2.100', guestPort: 80, target: { kind: 'cmd', command: 'printf 1,2' } }] }, slirp);
    expect(s).toBe('backend=slirp,hostname=a,,b,guestfwd=tcp:10.0.2.100:80-cmd:printf 1,,2');
    expect(parseConfig(s).options.map((o) => o.value)).toEqual(['a,b', 'tcp:10.0.2.100:80-cmd:printf 1,2']);
  });

  it('joins a list option with ";"', () => {
    expect(serializeConfig('slirp', { allow: ['10.0.0.0/8', '192.168.0.0/16'] }, slirp)).toBe('backend=slirp,allow=10.0.0.0/8;192.168.0.0/16');
  });

  it('writes the positional option as a key', () => {
    const x = validateOptions(parseConfig('tap0'), tap, 'tap');
    expect(serializeConfig('tap', x, tap)).toBe('backend=tap,ifname=tap0');
  });

  it('rejects an option the schema does not have', () => {
    expect(() => serializeConfig('slirp', { hostfw: [] }, slirp)).toThrow(GuestnetError);
  });
});

describe('canonicalize', () => {
  it('gives one spelling for the three dialects', () => {
    const want = 'backend=slirp,hostfwd=tcp:127.0.0.1:1234-:22,hostfwd=udp:127.0.0.1:5353-:53';
    expect(canonicalize('backend=slirp,hostfwd=tcp::1234-:22,hostfwd=udp::5353-:53', slirp, 'slirp')).toBe(want);
    expect(canonicalize('user,id=n0,net=10.0.2.0/24,hostfwd=tcp::1234-:22,hostfwd=udp::5353-:53', slirp, 'slirp')).toBe(want);
    expect(canonicalize('slirp,hostfwd=tcp::1234-:22;udp::5353-:53', slirp, 'slirp')).toBe(want);
  });

  it('resolves aliases and normalises values', () => {
    expect(canonicalize('user,ipv4-net=192.168.7.0/255.255.255.0,vhostname=vm,mac=52-54-00-AA-BB-CC', slirp, 'slirp')).toBe(
      'backend=slirp,net=192.168.7.0/24,hostname=vm,mac=52:54:00:aa:bb:cc',
    );
  });

  it('is idempotent', () => {
    const once = canonicalize('user,hostfwd=tcp:[::1]:2222-[fec0::15]:22,hostname=a,,b,restrict=yes', slirp, 'slirp');
    expect(canonicalize(once, slirp, 'slirp')).toBe(once);
  });
});

describe('serialize/parse round trip', () => {
  const ip4 = fc.ipV4();
  const addr = fc.oneof(ip4, fc.ipV6());
  const octet = fc.integer({ min: 0, max: 255 });
  const hostfwd: fc.Arbitrary<HostFwdRule> = fc.oneof(
    fc.record({
      proto: fc.constantFrom('tcp' as const, 'udp' as const),
      host: fc.record({ kind: fc.constant('inet' as const), addr, port: fc.integer({ min: 0, max: 65535 }) }),
      guestAddr: fc.oneof(fc.constant(''), addr),
      guestPort: fc.integer({ min: 1, max: 65535 }),
    }),
    fc.record({
      proto: fc.constant('tcp' as const),
      // `;` would split the item (see serialize.ts limits).
      host: fc.record({ kind: fc.constant('unix' as const), path: fc.string({ maxLength: 30 }).filter((s) => !s.includes(';')).map((s) => `/${s}`) }),
      guestAddr: fc.oneof(fc.constant(''), ip4),
      guestPort: fc.integer({ min: 1, max: 65535 }),
    }),
  );
  const guestfwd: fc.Arbitrary<GuestFwdRule> = fc.record({
    proto: fc.constant('tcp' as const),
    guestAddr: fc.oneof(fc.constant(''), ip4),
    guestPort: fc.integer({ min: 1, max: 65535 }),
    target: fc.oneof(
      fc.record({ kind: fc.constant('cmd' as const), command: fc.string({ minLength: 1, maxLength: 30 }).filter((s) => s.trim() !== '') }),
      fc.record({ kind: fc.constant('inet' as const), addr: fc.oneof(addr, fc.constantFrom('localhost', 'cache.example', 'cmd')), port: fc.integer({ min: 1, max: 65535 }) }),
      fc.record({ kind: fc.constant('unix' as const), path: fc.string({ minLength: 1, maxLength: 30 }).filter((s) => !s.includes(';')) }),
    ),
  });
  const options = fc.record(
    {
      net: fc.tuple(ip4, fc.integer({ min: 0, max: 32 })).map(([a, l]) => `${a}/${l}`),
      host: fc.oneof(ip4, octet.map((n) => `.${n}`), octet.map(String)),
      ipv6Host: fc.ipV6(),
      restrict: fc.boolean(),
      ipv6: fc.boolean(),
      hostname: fc.string({ unit: 'binary', maxLength: 30 }),
      dnssearch: fc.array(fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !s.includes(';')), { maxLength: 3 }),
      hostfwd: fc.array(hostfwd, { maxLength: 3 }),
      guestfwd: fc.array(guestfwd, { maxLength: 3 }),
      mtu: fc.integer({ min: 68, max: 65521 }),
      mac: fc.tuple(fc.integer({ min: 0, max: 127 }).map((n) => n * 2), fc.array(octet, { minLength: 5, maxLength: 5 })).map(([a, r]) => [a, ...r].map((n) => n.toString(16).padStart(2, '0')).join(':')),
      mode: fc.constantFrom('nat', 'bridge'),
      tftp: fc.string({ maxLength: 30 }),
      allow: fc.array(fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !s.includes(';')), { maxLength: 3 }),
    },
    { requiredKeys: [] },
  );

  it('validateOptions(parseConfig(serializeConfig(x))) deep-equals x with defaults', () => {
    const defaults = validateOptions(parseConfig('slirp'), slirp, 'slirp');
    fc.assert(
      fc.property(options, (o) => {
        const { ipv6Host, ...rest } = o;
        const x: Record<string, unknown> = { ...defaults, ...rest };
        if (ipv6Host !== undefined) x['ipv6-host'] = ipv6Host;
        expect(roundTrip(x)).toEqual(x);
      }),
      { numRuns: 1000 },
    );
  });

  it('round-trips a positional option', () => {
    const x = { ifname: 'tap,odd name', 'vnet-hdr': false };
    expect(roundTrip(x, tap, 'tap')).toEqual(x);
  });
});
