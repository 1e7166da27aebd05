import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { parseConfig } from './parse.ts';
import { validateOptions } from './validate.ts';
import { editDistance, suggest } from './suggest.ts';
import { ConfigError } from '../errors.ts';
import type { OptionSpec } from '../schema.ts';

/** A slirp-like schema, small enough to read in the assertions. */
const slirp: readonly OptionSpec[] = [
  { name: 'net', type: 'ipv4-cidr', default: '10.0.2.0/24', doc: 'guest network', aliases: ['ipv4-net'] },
  { name: 'host', type: 'ipv4-or-host', default: '10.0.2.2', doc: 'gateway' },
  { name: 'dns', type: 'ipv4-or-host', default: '10.0.2.3', doc: 'virtual DNS' },
  { name: 'ipv6-net', type: 'ipv6-cidr', default: 'fec0::/64', doc: 'IPv6 prefix' },
  { name: 'ipv6-host', type: 'ipv6', default: 'fec0::2', doc: 'IPv6 gateway' },
  { name: 'restrict', type: 'bool', default: false, doc: 'isolate the guest' },
  { name: 'hostname', type: 'string', default: '', doc: 'DHCP hostname', aliases: ['vhostname'] },
  { name: 'dnssearch', type: 'string', repeatable: true, default: [], doc: 'search domains' },
  { name: 'hostfwd', type: 'hostfwd', repeatable: true, default: [], doc: 'host forwards' },
  { name: 'guestfwd', type: 'guestfwd', repeatable: true, default: [], doc: 'guest forwards' },
  { name: 'mtu', type: 'int', min: 68, max: 65521, default: 1500, doc: 'IP MTU' },
  { name: 'mac', type: 'mac', default: '52:55:0a:00:02:02', doc: 'gateway MAC' },
  { name: 'mode', type: 'enum', values: ['nat', 'bridge', 'isolated'], default: 'nat', doc: 'mode' },
  { name: 'gw4', type: 'ipv4', doc: 'an IPv4 address without default' },
  { name: 'tftp', type: 'path', default: '', doc: 'TFTP root' },
  { name: 'allow', type: 'list', default: [], doc: 'allowed CIDRs' },
];

/** A tap-like schema with a positional option. */
const tap: readonly OptionSpec[] = [
  { name: 'ifname', type: 'string', positional: true, doc: 'TAP device' },
  { name: 'vnet-hdr', type: 'bool', default: true, doc: 'use IFF_VNET_HDR' },
];

const defaults = {
  net: '10.0.2.0/24',
  host: '10.0.2.2',
  dns: '10.0.2.3',
  'ipv6-net': 'fec0::/64',
  'ipv6-host': 'fec0::2',
  restrict: false,
  hostname: '',
  dnssearch: [],
  hostfwd: [],
  guestfwd: [],
  mtu: 1500,
  mac: '52:55:0a:00:02:02',
  mode: 'nat',
  tftp: '',
  allow: [],
};

const v = (input: string, specs: readonly OptionSpec[] = slirp, name = 'slirp'): Record<string, unknown> => validateOptions(parseConfig(input), specs, name);

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const e = err as ConfigError;
    expect(e.code).toBe('GUESTNET_BAD_CONFIG');
    return e;
  }
  throw new Error('expected a ConfigError');
}

describe('validateOptions › defaults and repetition', () => {
  it('fills every default for a bare type', () => {
    expect(v('backend=slirp')).toEqual(defaults);
  });

  it('accumulates repeated hostfwd keys in order', () => {
    const o = v('backend=slirp,hostfwd=tcp::1234-:22,hostfwd=udp::5353-:53');
    expect(o.hostfwd).toEqual([
      { proto: 'tcp', host: { kind: 'inet', addr: '127.0.0.1', port: 1234 }, guestAddr: '', guestPort: 22 },
      { proto: 'udp', host: { kind: 'inet', addr: '127.0.0.1', port: 5353 }, guestAddr: '', guestPort: 53 },
    ]);
  });

  it('gives the same rules for the bhyve ";" list', () => {
    expect(v('slirp,hostfwd=tcp::1234-:22;udp::5353-:53').hostfwd).toEqual(v('backend=slirp,hostfwd=tcp::1234-:22,hostfwd=udp::5353-:53').hostfwd);
  });

  it('mixes ";" lists and repeated keys, skipping empty items', () => {
    expect(v('slirp,dnssearch=a.example;b.example;,dnssearch=c.example').dnssearch).toEqual(['a.example', 'b.example', 'c.example']);
  });

  it('lets a guestfwd cmd: target keep its ";"', () => {
    const o = v('slirp,guestfwd=tcp:10.0.2.100:80-cmd:cd /srv; exec nc -l 80');
    expect(o.guestfwd).toEqual([{ proto: 'tcp', guestAddr: '10.0.2.100', guestPort: 80, target: { kind: 'cmd', command: 'cd /srv; exec nc -l 80' } }]);
  });

  it('splits guestfwd rules before a cmd: one', () => {
    const o = v('slirp,guestfwd=tcp:10.0.2.101:80-127.0.0.1:8080;tcp:10.0.2.100:80-cmd:a;b') as { guestfwd: { guestAddr: string }[] };
    expect(o.guestfwd.map((g) => g.guestAddr)).toEqual(['10.0.2.101', '10.0.2.100']);
  });

  it('lets the last of a repeated scalar win', () => {
    expect(v('user,mtu=1400,mtu=9000').mtu).toBe(9000);
  });

  it('maps aliases to the canonical name', () => {
    const o = v('user,ipv4-net=192.168.7.0/24,vhostname=vm1');
    expect(o.net).toBe('192.168.7.0/24');
    expect(o.hostname).toBe('vm1');
    expect(o).not.toHaveProperty('ipv4-net');
  });

  it('reads the QEMU example with id= kept out of the options', () => {
    const o = v('user,id=n0,net=10.0.2.0/24,hostfwd=tcp::1234-:22');
    expect(o).not.toHaveProperty('id');
    expect((o.hostfwd as unknown[]).length).toBe(1);
  });

  it('returns fresh default arrays each time', () => {
    const a = v('slirp');
    (a.hostfwd as unknown[]).push(1);
    expect(v('slirp').hostfwd).toEqual([]);
    expect(slirp.find((s) => s.name === 'hostfwd')!.default).toEqual([]);
  });

  it('applies the positional device name and lets an explicit key override it', () => {
    expect(v('tap0', tap, 'tap')).toEqual({ ifname: 'tap0', 'vnet-hdr': true });
    expect(v('tap0,ifname=tap1,vnet-hdr=off', tap, 'tap')).toEqual({ ifname: 'tap1', 'vnet-hdr': false });
  });

  it('rejects a positional name for a backend without a positional option', () => {
    const e = configError(() => v('netmap:vale0:1', slirp, 'netmap'));
    expect(e.offset).toBe(7);
    expect(e.length).toBe(7);
    expect(e.message).toBe("backend 'netmap' takes no device name, but 'vale0:1' was given");
  });
});

describe('validateOptions › unknown options', () => {
  it("suggests 'hostfwd' for 'hostfw' and points at the key", () => {
    const e = configError(() => v('backend=slirp,hostfw=tcp::1-:2'));
    expect(e.message).toBe("unknown option 'hostfw' — did you mean 'hostfwd'?");
    expect(e.offset).toBe(14);
    expect(e.length).toBe(6);
    expect(e.hint).toContain('options of slirp: net, host');
  });

  it('suggests across a swap of two letters', () => {
    expect(configError(() => v('user,rsetrict')).message).toBe("unknown option 'rsetrict' — did you mean 'restrict'?");
  });

  it('suggests an alias when that is the closer spelling', () => {
    expect(configError(() => v('user,vhostnam=x')).message).toBe("unknown option 'vhostnam' — did you mean 'vhostname'?");
  });

  it('suggests by prefix', () => {
    expect(configError(() => v('user,dnssea=a')).message).toBe("unknown option 'dnssea' — did you mean 'dnssearch'?");
    expect(configError(() => v('user,restricted')).message).toBe("unknown option 'restricted' — did you mean 'restrict'?");
  });

  it('offers nothing when nothing is close', () => {
    expect(configError(() => v('user,zzzzzz=1')).message).toBe("unknown option 'zzzzzz'");
  });
});

describe('validateOptions › conversions', () => {
  it('reads every bool spelling and a bare flag as true', () => {
    for (const [s, b] of [['on', true], ['off', false], ['yes', true], ['no', false], ['true', true], ['false', false], ['1', true], ['0', false], ['ON', true]] as const) {
      expect(v(`user,restrict=${s}`).restrict).toBe(b);
    }
    expect(v('user,restrict').restrict).toBe(true);
  });

  it('rejects a bad bool at the value, listing the spellings', () => {
    const e = configError(() => v('user,restrict=maybe'));
    expect(e.offset).toBe(14);
    expect(e.length).toBe(5);
    expect(e.hint).toBe('restrict takes on/off, yes/no, true/false or 1/0');
    expect(configError(() => v('user,restrict=constructor')).offset).toBe(14);
  });

  it('rejects a bare flag for a non-bool option at the key', () => {
    const e = configError(() => v('user,mtu'));
    expect(e.offset).toBe(5);
    expect(e.message).toBe("option 'mtu' needs a value");
  });

  it('checks int syntax and range', () => {
    expect(v('user,mtu=68').mtu).toBe(68);
    expect(v('user,mtu=65521').mtu).toBe(65521);
    const lo = configError(() => v('user,mtu=67'));
    expect(lo.message).toBe('mtu=67 is out of range (68–65521)');
    expect(lo.offset).toBe(9);
    expect(configError(() => v('user,mtu=65522')).offset).toBe(9);
    expect(configError(() => v('user,mtu=15OO')).message).toBe("invalid value '15OO' for mtu: expected an integer 68–65521");
    expect(configError(() => v('user,mtu=')).offset).toBe(9);
    expect(configError(() => v('user,mtu=99999999999999999999')).message).toContain('too large');
  });

  it('reads ipv4-or-host as given: full address, .N or N', () => {
    expect(v('user,host=10.0.2.2').host).toBe('10.0.2.2');
    expect(v('user,host=.2').host).toBe('.2');
    expect(v('user,host=2').host).toBe('2');
    expect(v('user,dns=.0.3').dns).toBe('.0.3');
    expect(configError(() => v('user,host=.256')).offset).toBe(10);
    expect(configError(() => v('user,host=10.0.2')).offset).toBe(10);
  });

  it('normalises cidrs and accepts a dotted netmask', () => {
    expect(v('user,net=192.168.0.0/255.255.0.0').net).toBe('192.168.0.0/16');
    expect(v('user,net=10.0.0.0').net).toBe('10.0.0.0');
    const e = configError(() => v('user,net=10.0.2.0/33'));
    expect(e.offset).toBe(18);
    expect(e.message).toBe("bad prefix length '33' for net: expected 0–32");
    const m = configError(() => v('user,net=10.0.2.0/255.0.255.0'));
    expect(m.offset).toBe(18);
    expect(m.message).toContain('bad netmask');
    expect(v('user,ipv6-net=FD00::/48')['ipv6-net']).toBe('fd00::/48');
    expect(configError(() => v('user,ipv6-net=fd00::/129')).offset).toBe(21);
    expect(configError(() => v('user,ipv6-net=fd00:::/64')).offset).toBe(14);
  });

  it('reads ipv6 with or without brackets', () => {
    expect(v('user,ipv6-host=[FEC0::2]')['ipv6-host']).toBe('fec0::2');
    expect(v('user,ipv6-host=fec0::2')['ipv6-host']).toBe('fec0::2');
    expect(configError(() => v('user,ipv6-host=10.0.2.2')).offset).toBe(15);
  });

  it('reads ipv4 strictly', () => {
    expect(v('user,gw4=192.168.1.1').gw4).toBe('192.168.1.1');
    expect(configError(() => v('user,gw4=192.168.1.01')).offset).toBe(9);
  });

  it('normalises a MAC address and rejects a multicast one', () => {
    expect(v('user,mac=52-54-00-AB-CD-EF').mac).toBe('52:54:00:ab:cd:ef');
    expect(configError(() => v('user,mac=52:54:00:ab:cd')).offset).toBe(9);
    expect(configError(() => v('user,mac=52:54-00:ab:cd:ef')).offset).toBe(9);
    expect(configError(() => v('user,mac=01:00:5e:00:00:01')).message).toContain('multicast');
  });

  it('checks enums and lists the allowed values in the hint', () => {
    expect(v('user,mode=bridge').mode).toBe('bridge');
    expect(v('user,mode=NAT').mode).toBe('nat');
    const e = configError(() => v('user,mode=brige'));
    expect(e.message).toBe("invalid value 'brige' for mode — did you mean 'bridge'?");
    expect(e.hint).toBe('one of: nat, bridge, isolated');
    expect(e.offset).toBe(10);
  });

  it('keeps strings and paths verbatim, with escaped commas', () => {
    expect(v('user,hostname=a b=c;d,,e').hostname).toBe('a b=c;d,e');
    expect(v('user,tftp=/srv/tftp').tftp).toBe('/srv/tftp');
  });

  it('splits a list on ";" and drops empty items', () => {
    expect(v('user,allow=10.0.0.0/8;;192.168.0.0/16;').allow).toEqual(['10.0.0.0/8', '192.168.0.0/16']);
    expect(v('user,allow=').allow).toEqual([]);
    expect(v('user,allow=a,allow=b').allow).toEqual(['b']);
  });

  it('keeps a single empty item of a repeatable string', () => {
    expect(v('user,dnssearch=').dnssearch).toEqual(['']);
  });

  it('points a hostfwd error inside a ";" list at the exact characters', () => {
    const input = 'slirp,hostfwd=tcp::1234-:22;udp::5353-:0';
    const e = configError(() => v(input));
    expect(e.offset).toBe(39);
    expect(input.slice(e.offset, e.offset + e.length)).toBe('0');
    expect(e.message).toBe('guest port 0 is out of range (1–65535)');
  });

  it('points errors after escaped commas at the right characters', () => {
    const input = 'user,hostname=a,,b,guestfwd=tcp:10.0.2.100:80-unix:,mtu=1';
    const e = configError(() => v(input));
    expect(e.offset).toBe(51);
    expect(e.message).toBe("missing socket path after 'unix:'");
    const m = configError(() => v('user,hostname=a,,b,mtu=1'));
    expect(m.offset).toBe(23);
  });

  it('reports an empty hostfwd', () => {
    const e = configError(() => v('user,hostfwd='));
    expect(e.message).toBe('empty host forward');
    expect(e.offset).toBe(13);
  });
});

describe('validateOptions › properties', () => {
  it('throws nothing but ConfigError on arbitrary option values', () => {
    const keys = fc.constantFrom(...slirp.map((s) => s.name), 'hostfw', 'id');
    const val = fc.oneof(fc.string({ maxLength: 30 }), fc.array(fc.constantFrom('tcp', 'udp', ':', '-', '[', ']', '::1', '1', '.', '/', ';', 'cmd:', 'unix:', '10.0.2.2', ',,'), { maxLength: 10 }).map((a) => a.join('')));
    fc.assert(
      fc.property(fc.array(fc.tuple(keys, fc.option(val, { nil: undefined })), { maxLength: 5 }), (opts) => {
        const input = ['user', ...opts.map(([k, x]) => (x === undefined ? k : `${k}=${x}`))].join(',');
        try {
          v(input);
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          expect(err.offset).toBeLessThanOrEqual(input.length);
        }
      }),
      { numRuns: 1500 },
    );
  });
});

describe('suggest', () => {
  it('measures Damerau-Levenshtein (OSA) distance', () => {
    expect(editDistance('hostfwd', 'hostfwd')).toBe(0);
    expect(editDistance('hostfw', 'hostfwd')).toBe(1);
    expect(editDistance('hsotfwd', 'hostfwd')).toBe(1);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('ca', 'abc')).toBe(3);
  });

  it('picks the closest candidate, first listed on a tie, case-insensitively', () => {
    expect(suggest('slrip', ['slirp', 'uip', 'tap'])).toBe('slirp');
    expect(suggest('TAB', ['tap', 'tab2'])).toBe('tap');
    expect(suggest('vael', ['netmap', 'vale'])).toBe('vale');
  });

  it('does not rewrite short words into anything', () => {
    expect(suggest('ab', ['id', 'tap'])).toBeUndefined();
    expect(suggest('', ['tap'])).toBeUndefined();
    expect(suggest('qqqqq', ['slirp', 'tap'])).toBeUndefined();
  });
});
