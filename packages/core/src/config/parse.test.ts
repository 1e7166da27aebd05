import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { parseConfig, sourceOffset } from './parse.ts';
import { ConfigError } from '../errors.ts';

/** Run `fn`, expect a ConfigError, and return it for offset assertions. */
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

describe('parseConfig › key dialect', () => {
  it('reads backend= and repeated hostfwd keys in order', () => {
    const input = 'backend=slirp,hostfwd=tcp::1234-:22,hostfwd=udp::5353-:53';
    const p = parseConfig(input);
    expect(p.type).toBe('slirp');
    expect(p.typeOffset).toBe(8);
    expect(p.dialect).toBe('key');
    expect(p.options).toEqual([
      { key: 'hostfwd', value: 'tcp::1234-:22', keyOffset: 14, valueOffset: 22 },
      { key: 'hostfwd', value: 'udp::5353-:53', keyOffset: 36, valueOffset: 44 },
    ]);
    expect(p.input).toBe(input);
  });

  it('accepts backend= after other options, and then treats a leading bare word as a flag', () => {
    const p = parseConfig('restrict,mtu=9000,backend=user');
    expect(p.type).toBe('user');
    expect(p.typeOffset).toBe(26);
    expect(p.dialect).toBe('key');
    expect(p.options.map((o) => [o.key, o.value])).toEqual([
      ['restrict', undefined],
      ['mtu', '9000'],
    ]);
    expect(p.options[0]!.valueOffset).toBe(-1);
  });

  it('lower-cases the type and keeps third-party package names', () => {
    expect(parseConfig('backend=SLIRP').type).toBe('slirp');
    expect(parseConfig('backend=@acme/guestnet-vde,x=1').type).toBe('@acme/guestnet-vde');
  });

  it('keeps "=" inside values (split at the first one)', () => {
    expect(parseConfig('backend=slirp,guestfwd=tcp:10.0.2.100:80-cmd:env A=B nc x 80').options[0]!.value).toBe('tcp:10.0.2.100:80-cmd:env A=B nc x 80');
  });

  it('records an empty value as the empty string, not a flag', () => {
    const o = parseConfig('backend=slirp,hostname=').options[0]!;
    expect(o).toEqual({ key: 'hostname', value: '', keyOffset: 14, valueOffset: 23 });
  });

  it('rejects a duplicate backend= at the second key', () => {
    const e = configError(() => parseConfig('backend=slirp,mtu=1500,backend=tap'));
    expect(e.offset).toBe(23);
    expect(e.length).toBe(7);
    expect(e.message).toBe("duplicate 'backend='");
    expect(e.hint).toContain('offset 0');
  });

  it('rejects backend= with no type', () => {
    const e = configError(() => parseConfig('backend=,restrict'));
    expect(e.offset).toBe(0);
    expect(e.length).toBe(8);
    expect(e.message).toContain('missing backend type');
  });

  it('rejects trailing garbage after the type', () => {
    const e = configError(() => parseConfig('backend=slirp x,restrict'));
    expect(e.offset).toBe(13);
    expect(e.length).toBe(2);
    expect(e.message).toBe("unexpected ' x' after 'slirp'");
  });

  it('rejects a ":" in a plain type name', () => {
    const e = configError(() => parseConfig('slirp:x'));
    expect(e.offset).toBe(5);
    expect(e.message).toContain("after backend type 'slirp'");
  });

  it('rejects a type that does not start with a letter', () => {
    const e = configError(() => parseConfig('9slirp'));
    expect(e.offset).toBe(0);
    expect(e.message).toContain('must start with a letter');
  });
});

describe('parseConfig › QEMU dialect', () => {
  it('takes the first bare word as the type and records id=', () => {
    const p = parseConfig('user,id=n0,net=10.0.2.0/24,hostfwd=tcp::1234-:22');
    expect(p.type).toBe('user');
    expect(p.typeOffset).toBe(0);
    expect(p.id).toBe('n0');
    expect(p.dialect).toBe('qemu');
    expect(p.options.map((o) => o.key)).toEqual(['net', 'hostfwd']);
    expect(p.options[0]).toEqual({ key: 'net', value: '10.0.2.0/24', keyOffset: 11, valueOffset: 15 });
  });

  it('unescapes ",," to a literal comma and keeps offsets into the raw input', () => {
    const input = 'user,guestfwd=tcp:10.0.2.100:80-cmd:printf a,,b,restrict';
    const p = parseConfig(input);
    expect(p.options).toEqual([
      { key: 'guestfwd', value: 'tcp:10.0.2.100:80-cmd:printf a,b', keyOffset: 5, valueOffset: 14 },
      { key: 'restrict', value: undefined, keyOffset: 48, valueOffset: -1 },
    ]);
    expect(p.dialect).toBe('qemu');
  });

  it('pairs commas greedily: ",,," is a literal comma then a separator', () => {
    const p = parseConfig('user,hostname=a,,,restrict');
    expect(p.options.map((o) => [o.key, o.value])).toEqual([
      ['hostname', 'a,'],
      ['restrict', undefined],
    ]);
  });

  it('treats bare words after the type as flags', () => {
    const p = parseConfig('user,restrict,ipv6=off');
    expect(p.options[0]).toEqual({ key: 'restrict', value: undefined, keyOffset: 5, valueOffset: -1 });
  });

  it('reads a QEMU netdev type without extra syntax as QEMU', () => {
    expect(parseConfig('tap,ifname=tap0').dialect).toBe('qemu');
    expect(parseConfig('tap,ifname=tap0').positional).toBeUndefined();
  });

  it('does not treat type= as the backend (only backend= and the leading word do)', () => {
    const p = parseConfig('user,type=tap');
    expect(p.type).toBe('user');
    expect(p.options[0]!.key).toBe('type');
  });

  it('rejects an invalid id at its value', () => {
    const e = configError(() => parseConfig('user,id=0bad'));
    expect(e.offset).toBe(8);
    expect(e.length).toBe(4);
    expect(e.message).toBe("invalid id '0bad'");
  });
});

describe('parseConfig › bhyve dialect', () => {
  it('keeps a ";" list inside one value and marks the dialect', () => {
    const p = parseConfig('slirp,hostfwd=tcp::1234-:22;udp::5353-:53');
    expect(p.type).toBe('slirp');
    expect(p.dialect).toBe('bhyve');
    expect(p.options).toEqual([{ key: 'hostfwd', value: 'tcp::1234-:22;udp::5353-:53', keyOffset: 6, valueOffset: 14 }]);
  });

  it('reads slirp without other hints as bhyve', () => {
    expect(parseConfig('slirp').dialect).toBe('bhyve');
  });

  it.each([
    ['tap0', 'tap', 'tap0', 0],
    ['vmnet0', 'tap', 'vmnet0', 0],
    ['vale0:1', 'netmap', 'vale0:1', 0],
    ['netmap:vale0:1', 'netmap', 'vale0:1', 7],
    ['netmap:eth0', 'netmap', 'eth0', 7],
    ['pipe0{1', 'netmap', 'pipe0{1', 0],
    ['pipe0}1', 'netmap', 'pipe0}1', 0],
  ])('infers %s → type %s, positional %s', (input, type, positional, posOff) => {
    const p = parseConfig(input);
    expect(p.type).toBe(type);
    expect(p.positional).toBe(positional);
    expect(p.positionalOffset).toBe(posOff);
    expect(p.typeOffset).toBe(0);
    expect(p.dialect).toBe('bhyve');
    expect(p.options).toEqual([]);
  });

  it('keeps options after a device name', () => {
    const p = parseConfig('tap0,mtu=9000');
    expect(p.positional).toBe('tap0');
    expect(p.options).toEqual([{ key: 'mtu', value: '9000', keyOffset: 5, valueOffset: 9 }]);
  });

  it('keeps the case of the device name', () => {
    expect(parseConfig('tapVM').positional).toBe('tapVM');
  });

  it('leaves bare vale, tap and QEMU vmnet-* types as types', () => {
    expect(parseConfig('vale').positional).toBeUndefined();
    expect(parseConfig('vale').type).toBe('vale');
    expect(parseConfig('tap').positional).toBeUndefined();
    expect(parseConfig('vmnet-shared').type).toBe('vmnet-shared');
    expect(parseConfig('vmnet-shared').positional).toBeUndefined();
  });

  it('infers the device from backend= too', () => {
    const p = parseConfig('backend=tap0');
    expect(p.type).toBe('tap');
    expect(p.positional).toBe('tap0');
    expect(p.positionalOffset).toBe(8);
    expect(p.dialect).toBe('key');
  });

  it('rejects netgraph with a clear error', () => {
    const e = configError(() => parseConfig('netgraph,path=vmlink:,peerhook=link0'));
    expect(e.offset).toBe(0);
    expect(e.length).toBe(8);
    expect(e.message).toBe("bhyve's netgraph backend is not supported");
    expect(e.hint).toContain('tap0');
  });

  it('rejects netmap: with no port name', () => {
    const e = configError(() => parseConfig('netmap:'));
    expect(e.offset).toBe(6);
    expect(e.message).toContain("missing port name after 'netmap:'");
  });

  it('rejects trailing garbage after a device name', () => {
    const e = configError(() => parseConfig('tap0 extra'));
    expect(e.offset).toBe(4);
    expect(e.length).toBe(6);
    expect(e.message).toBe("unexpected ' extra' after 'tap0'");
  });
});

describe('parseConfig › errors', () => {
  it('rejects an empty string as a missing type', () => {
    const e = configError(() => parseConfig(''));
    expect(e.offset).toBe(0);
    expect(e.message).toBe('missing backend type');
  });

  it('rejects key=value first without backend= as a missing type', () => {
    const e = configError(() => parseConfig('net=10.0.2.0/24,restrict'));
    expect(e.offset).toBe(0);
    expect(e.length).toBe(3);
    expect(e.message).toBe('missing backend type');
    expect(e.hint).toContain('backend=TYPE');
  });

  it('rejects a leading comma as a missing type', () => {
    const e = configError(() => parseConfig(',restrict'));
    expect(e.offset).toBe(0);
    expect(e.message).toBe('missing backend type');
  });

  it('rejects "=" with no key', () => {
    const e = configError(() => parseConfig('user,=on'));
    expect(e.offset).toBe(5);
    expect(e.length).toBe(1);
    expect(e.message).toBe("'=' with no option name before it");
  });

  it('rejects an empty key at the start of a key-form string', () => {
    const e = configError(() => parseConfig('=slirp'));
    expect(e.offset).toBe(0);
  });

  it('rejects a trailing comma at the comma', () => {
    const e = configError(() => parseConfig('user,restrict,'));
    expect(e.offset).toBe(13);
    expect(e.message).toBe("trailing ','");
  });

  it('rejects a space in an option name at the space', () => {
    const e = configError(() => parseConfig('user,host fwd=tcp::1-:2'));
    expect(e.offset).toBe(9);
    expect(e.message).toBe("unexpected ' ' in option name 'host fwd'");
    expect(e.hint).toContain('spaces');
  });

  it('rejects an escaped comma inside an option name', () => {
    const e = configError(() => parseConfig('user,ho,,st=1'));
    expect(e.offset).toBe(7);
  });

  it('rejects an option name that starts with a digit', () => {
    const e = configError(() => parseConfig('user,1x=2'));
    expect(e.offset).toBe(5);
    expect(e.message).toContain('must start with a letter');
  });

  it('draws the caret under the offending characters', () => {
    const e = configError(() => parseConfig('backend=slirp,mtu=1,backend=tap'));
    expect(e.caret()).toBe('backend=slirp,mtu=1,backend=tap\n                    ^^^^^^^');
  });
});

describe('parseConfig › properties', () => {
  const alphabet = fc.constantFrom(...'abtpuv01:;,=[]{}-. /@\t'.split(''), 'backend=', 'id=', 'tap0', 'netmap:', 'vale', ',,');
  const isBounded = (e: ConfigError, input: string): boolean => e.offset >= 0 && e.offset <= input.length && e.length >= 1;

  it('throws nothing but ConfigError on arbitrary strings, with offsets inside the input', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 60 }), fc.array(alphabet, { maxLength: 20 }).map((a) => a.join(''))), (s) => {
        try {
          const p = parseConfig(s);
          expect(p.input).toBe(s);
          for (const o of p.options) {
            expect(s.startsWith(o.key, o.keyOffset)).toBe(true);
          }
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          if (!isBounded(err, s)) throw new Error(`offset ${err.offset} outside ${JSON.stringify(s)}`);
        }
      }),
      { numRuns: 1500 },
    );
  });
});

describe('sourceOffset', () => {
  it('maps indexes of an unescaped value back across ",," pairs', () => {
    const input = 'user,hostname=a,,b,,c';
    // value "a,b,c" starts at 14; its 'b' (index 2) is at 17, its 'c' (index 4) at 20
    expect(sourceOffset(input, 14, 2, true)).toBe(17);
    expect(sourceOffset(input, 14, 4, true)).toBe(20);
    expect(sourceOffset(input, 14, 4, false)).toBe(18);
  });

  it('clamps to the end of the input', () => {
    expect(sourceOffset('abc', 1, 10, true)).toBe(3);
    expect(sourceOffset('abc', 1, 10, false)).toBe(3);
  });
});
