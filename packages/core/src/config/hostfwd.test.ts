import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { formatGuestFwd, formatHostFwd, isIPv4, isIPv6, parseGuestFwd, parseHostFwd } from './hostfwd.ts';
import { parseConfig } from './parse.ts';
import { ConfigError } from '../errors.ts';
import type { HostFwdRule } from '../backend.ts';
import type { GuestFwdRule } from './types.ts';

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

describe('parseHostFwd', () => {
  it('reads tcp::1234-:22 with the host address defaulting to 127.0.0.1, not any-address', () => {
    expect(parseHostFwd('tcp::1234-:22')).toEqual({ proto: 'tcp', host: { kind: 'inet', addr: '127.0.0.1', port: 1234 }, guestAddr: '', guestPort: 22 });
  });

  it('keeps an explicit 0.0.0.0', () => {
    expect(parseHostFwd('tcp:0.0.0.0:2222-:22').host).toEqual({ kind: 'inet', addr: '0.0.0.0', port: 2222 });
  });

  it('reads udp with both addresses', () => {
    expect(parseHostFwd('udp:127.0.0.2:5353-10.0.2.15:53')).toEqual({ proto: 'udp', host: { kind: 'inet', addr: '127.0.0.2', port: 5353 }, guestAddr: '10.0.2.15', guestPort: 53 });
  });

  it('defaults the protocol to tcp for QEMU\'s empty field and when it is left out', () => {
    const want = { proto: 'tcp', host: { kind: 'inet', addr: '127.0.0.1', port: 1234 }, guestAddr: '', guestPort: 22 };
    expect(parseHostFwd('::1234-:22')).toEqual(want);
    expect(parseHostFwd(':1234-:22')).toEqual(want);
    expect(parseHostFwd('1234-:22')).toEqual(want);
    expect(parseHostFwd('tcp:1234-:22')).toEqual(want);
    expect(parseHostFwd('127.0.0.1:1234-:22')).toEqual(want);
    expect(parseHostFwd('TCP::1234-:22')).toEqual(want);
  });

  it('reads bracketed IPv6 addresses on both sides', () => {
    expect(parseHostFwd('tcp:[::1]:2222-[fec0::15]:22')).toEqual({ proto: 'tcp', host: { kind: 'inet', addr: '::1', port: 2222 }, guestAddr: 'fec0::15', guestPort: 22 });
    expect(parseHostFwd('udp:[::]:53-[FEC0::15]:53').guestAddr).toBe('fec0::15');
  });

  it('allows host port 0 (ephemeral) but not guest port 0', () => {
    expect(parseHostFwd('tcp::0-:22').host).toEqual({ kind: 'inet', addr: '127.0.0.1', port: 0 });
    const e = configError(() => parseHostFwd('tcp::0-:0'));
    expect(e.offset).toBe(8);
    expect(e.message).toBe('guest port 0 is out of range (1–65535)');
  });

  it('reads a unix-socket host side in QEMU\'s spelling and with tcp: in front', () => {
    const want = { proto: 'tcp', host: { kind: 'unix', path: '/tmp/s.sock' }, guestAddr: '', guestPort: 22 };
    expect(parseHostFwd('unix:/tmp/s.sock-:22')).toEqual(want);
    expect(parseHostFwd('tcp:unix:/tmp/s.sock-:22')).toEqual(want);
  });

  it('allows "-" and ":" inside a unix socket path', () => {
    expect(parseHostFwd('unix:/run/vm-1/a:b.sock-10.0.2.15:22').host).toEqual({ kind: 'unix', path: '/run/vm-1/a:b.sock' });
  });

  it('rejects a relative unix socket path', () => {
    const e = configError(() => parseHostFwd('unix:s.sock-:22'));
    expect(e.offset).toBe(5);
    expect(e.length).toBe(6);
    expect(e.message).toContain('must be absolute');
  });

  it('rejects a unix socket path longer than sun_path', () => {
    const e = configError(() => parseHostFwd(`unix:/${'a'.repeat(107)}-:22`));
    expect(e.offset).toBe(5);
    expect(e.message).toContain('107 bytes');
  });

  it('rejects udp over a unix socket', () => {
    const e = configError(() => parseHostFwd('udp:unix:/tmp/s-:53'));
    expect(e.offset).toBe(0);
    expect(e.length).toBe(3);
    expect(e.message).toContain('TCP streams only');
  });

  it('rejects an unknown protocol at the protocol', () => {
    const e = configError(() => parseHostFwd('sctp::1-:2'));
    expect(e.offset).toBe(0);
    expect(e.length).toBe(4);
    expect(e.message).toBe("unknown protocol 'sctp' (tcp or udp)");
  });

  it('rejects a rule without "-"', () => {
    const e = configError(() => parseHostFwd('tcp::2222'));
    expect(e.offset).toBe(0);
    expect(e.length).toBe(9);
    expect(e.message).toContain("no '-'");
  });

  it('rejects an unterminated bracket at the bracket', () => {
    const e = configError(() => parseHostFwd('tcp:[::1:2222-:22'));
    expect(e.offset).toBe(4);
    expect(e.message).toBe("unterminated '[' (missing ']')");
    const g = configError(() => parseHostFwd('tcp::2222-[fec0::15:22'));
    expect(g.offset).toBe(10);
  });

  it('rejects garbage after a closing bracket', () => {
    const e = configError(() => parseHostFwd('tcp:[::1]x:2222-:22'));
    expect(e.offset).toBe(9);
    expect(e.message).toBe("unexpected 'x' after ']'");
  });

  it('rejects an unbracketed IPv6 address and says how to write it', () => {
    const e = configError(() => parseHostFwd('tcp:::1:2222-:22'));
    expect(e.offset).toBe(4);
    expect(e.hint).toBe('write [::1]');
  });

  it('rejects a bad IPv6 address inside brackets', () => {
    const e = configError(() => parseHostFwd('tcp:[::g]:2222-:22'));
    expect(e.offset).toBe(5);
    expect(e.length).toBe(3);
  });

  it('rejects bad ports and trailing garbage at the port', () => {
    expect(configError(() => parseHostFwd('tcp::65536-:22')).offset).toBe(5);
    const e = configError(() => parseHostFwd('tcp::1234-:22x'));
    expect(e.offset).toBe(11);
    expect(e.length).toBe(3);
    expect(e.message).toBe("bad guest port '22x': expected a number 1–65535");
    expect(configError(() => parseHostFwd('tcp::1234-:')).message).toBe('missing guest port');
    expect(configError(() => parseHostFwd('tcp::0x10-:22')).offset).toBe(5);
  });

  it('rejects a host address with leading zeros or a name', () => {
    expect(configError(() => parseHostFwd('tcp:127.0.0.01:1-:2')).offset).toBe(4);
    expect(configError(() => parseHostFwd('tcp:localhost:1-:2')).message).toBe("bad address 'localhost'");
  });

  it('points errors into the whole config string, across ",," escapes', () => {
    const input = 'user,hostname=a,,b,hostfwd=tcp::99999-:22';
    const opt = parseConfig(input).options[1]!;
    const e = configError(() => parseHostFwd(opt.value!, { input, offset: opt.valueOffset, escaped: true }));
    expect(e.input).toBe(input);
    expect(e.offset).toBe(32);
    expect(input.slice(e.offset, e.offset + e.length)).toBe('99999');
  });

  it('maps offsets after an escaped comma inside the value itself', () => {
    const input = 'user,hostfwd=unix:/tmp/a,,b-:0';
    const opt = parseConfig(input).options[0]!;
    const e = configError(() => parseHostFwd(opt.value!, { input, offset: opt.valueOffset, escaped: true }));
    expect(e.offset).toBe(29);
    expect(input[e.offset]).toBe('0');
  });
});

describe('formatHostFwd', () => {
  it('writes the canonical spelling', () => {
    expect(formatHostFwd(parseHostFwd('::1234-:22'))).toBe('tcp:127.0.0.1:1234-:22');
    expect(formatHostFwd(parseHostFwd('udp:[::1]:53-[fec0::15]:53'))).toBe('udp:[::1]:53-[fec0::15]:53');
    expect(formatHostFwd(parseHostFwd('tcp:unix:/tmp/s.sock-10.0.2.15:22'))).toBe('unix:/tmp/s.sock-10.0.2.15:22');
  });

  const addr = fc.oneof(fc.ipV4(), fc.ipV6());
  const rule: fc.Arbitrary<HostFwdRule> = fc.oneof(
    fc.record({
      proto: fc.constantFrom('tcp' as const, 'udp' as const),
      host: fc.record({ kind: fc.constant('inet' as const), addr, port: fc.integer({ min: 0, max: 65535 }) }),
      guestAddr: fc.oneof(fc.constant(''), addr),
      guestPort: fc.integer({ min: 1, max: 65535 }),
    }),
    fc.record({
      proto: fc.constant('tcp' as const),
      host: fc.record({ kind: fc.constant('unix' as const), path: fc.string({ maxLength: 40 }).filter((s) => !s.includes('\0')).map((s) => `/${s}`) }),
      guestAddr: fc.oneof(fc.constant(''), addr),
      guestPort: fc.integer({ min: 1, max: 65535 }),
    }),
  );

  it('round-trips: parseHostFwd(formatHostFwd(r)) equals r', () => {
    fc.assert(
      fc.property(rule, (r) => {
        fc.pre(r.host.kind !== 'unix' || new TextEncoder().encode(r.host.path).length <= 107);
        const norm = (a: string): string => a.toLowerCase();
        const want = { ...r, guestAddr: norm(r.guestAddr), host: r.host.kind === 'inet' ? { ...r.host, addr: norm(r.host.addr) } : r.host };
        expect(parseHostFwd(formatHostFwd(r))).toEqual(want);
      }),
      { numRuns: 500 },
    );
  });

  it('never throws anything but ConfigError on arbitrary rules', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.array(fc.constantFrom('tcp', 'udp', 'unix', ':', '-', '[', ']', '::1', '1', '/'), { maxLength: 12 }), (a, parts) => {
        for (const s of [a, parts.join('')]) {
          for (const f of [parseHostFwd, parseGuestFwd]) {
            try {
              f(s);
            } catch (err) {
              if (!(err instanceof ConfigError)) throw err;
              expect(err.offset).toBeLessThanOrEqual(s.length);
            }
          }
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('parseGuestFwd', () => {
  it('reads a cmd: target, keeping the command verbatim', () => {
    expect(parseGuestFwd('tcp:10.0.2.100:1234-cmd:nc -q0 127.0.0.1 22')).toEqual({
      proto: 'tcp',
      guestAddr: '10.0.2.100',
      guestPort: 1234,
      target: { kind: 'cmd', command: 'nc -q0 127.0.0.1 22' },
    });
  });

  it('reads HOST:PORT, tcp:HOST:PORT, [v6]:PORT and a host name', () => {
    expect(parseGuestFwd('tcp:10.0.2.100:80-127.0.0.1:8080').target).toEqual({ kind: 'inet', addr: '127.0.0.1', port: 8080 });
    expect(parseGuestFwd(':10.0.2.100:80-tcp:127.0.0.1:8080').target).toEqual({ kind: 'inet', addr: '127.0.0.1', port: 8080 });
    expect(parseGuestFwd('tcp:10.0.2.100:80-[::1]:8080').target).toEqual({ kind: 'inet', addr: '::1', port: 8080 });
    expect(parseGuestFwd('tcp:10.0.2.100:80-build-cache.local:3128').target).toEqual({ kind: 'inet', addr: 'build-cache.local', port: 3128 });
  });

  it('reads a unix: target', () => {
    expect(parseGuestFwd('tcp:10.0.2.100:80-unix:/run/app.sock').target).toEqual({ kind: 'unix', path: '/run/app.sock' });
  });

  it('leaves an empty guest address to the backend', () => {
    expect(parseGuestFwd('tcp::80-127.0.0.1:80').guestAddr).toBe('');
  });

  it('rejects udp, like QEMU', () => {
    const e = configError(() => parseGuestFwd('udp:10.0.2.100:53-127.0.0.1:53'));
    expect(e.offset).toBe(0);
    expect(e.message).toBe('guestfwd forwards TCP only');
  });

  it('rejects a missing target, an empty command and a bad target port at their offsets', () => {
    expect(configError(() => parseGuestFwd('tcp:10.0.2.100:80')).message).toContain("no '-'");
    const c = configError(() => parseGuestFwd('tcp:10.0.2.100:80-cmd:'));
    expect(c.offset).toBe(22);
    expect(c.message).toBe("missing command after 'cmd:'");
    const p = configError(() => parseGuestFwd('tcp:10.0.2.100:80-127.0.0.1:http'));
    expect(p.offset).toBe(28);
    expect(p.length).toBe(4);
    const h = configError(() => parseGuestFwd('tcp:10.0.2.100:80-:8080'));
    expect(h.offset).toBe(18);
    expect(h.message).toBe('missing target host before the port');
  });

  it('rejects a guest port of 0', () => {
    expect(configError(() => parseGuestFwd('tcp:10.0.2.100:0-cmd:x')).offset).toBe(15);
  });
});

describe('formatGuestFwd', () => {
  it('writes the canonical spelling', () => {
    expect(formatGuestFwd(parseGuestFwd(':10.0.2.100:80-tcp:127.0.0.1:8080'))).toBe('tcp:10.0.2.100:80-127.0.0.1:8080');
    expect(formatGuestFwd(parseGuestFwd('tcp::80-[::1]:8080'))).toBe('tcp::80-[::1]:8080');
  });

  it('spells a target host named like a prefix with tcp: so it reads back', () => {
    const r: GuestFwdRule = { proto: 'tcp', guestAddr: '10.0.2.100', guestPort: 80, target: { kind: 'inet', addr: 'cmd', port: 80 } };
    expect(formatGuestFwd(r)).toBe('tcp:10.0.2.100:80-tcp:cmd:80');
    expect(parseGuestFwd(formatGuestFwd(r))).toEqual(r);
  });

  it('round-trips commands with any characters', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 30 }).filter((s) => s.trim() !== ''), fc.integer({ min: 1, max: 65535 }), (command, port) => {
        const r: GuestFwdRule = { proto: 'tcp', guestAddr: '10.0.2.100', guestPort: port, target: { kind: 'cmd', command } };
        expect(parseGuestFwd(formatGuestFwd(r))).toEqual(r);
      }),
    );
  });
});

describe('address syntax', () => {
  it('accepts strict dotted quads only', () => {
    expect(isIPv4('10.0.2.2')).toBe(true);
    expect(isIPv4('255.255.255.255')).toBe(true);
    for (const bad of ['10.0.2', '10.0.2.256', '010.0.2.2', '1.2.3.4.5', '', '1..2.3', ' 1.2.3.4']) expect(isIPv4(bad)).toBe(false);
  });

  it('accepts RFC 4291 IPv6 forms and rejects malformed ones', () => {
    for (const ok of ['::', '::1', 'fec0::15', '1:2:3:4:5:6:7:8', '::ffff:10.0.2.15', '1::', '1:2:3:4:5:6:7::']) expect(isIPv6(ok)).toBe(true);
    for (const bad of [':', ':::', '1:2:3:4:5:6:7:8:9', '1::2::3', 'fec0::g', '12345::', '1:2:3:4:5:6:7', '::1%eth0', '[::1]', '1:']) expect(isIPv6(bad)).toBe(false);
  });

  it('agrees with fast-check\'s generators', () => {
    fc.assert(fc.property(fc.ipV6(), (a) => isIPv6(a)), { numRuns: 500 });
    fc.assert(fc.property(fc.ipV4(), (a) => isIPv4(a)), { numRuns: 200 });
  });
});
