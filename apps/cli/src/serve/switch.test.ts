import { describe, expect, it } from 'vitest';
import { pair } from '@guestnet/core';
import { SharedSwitch } from './switch.ts';

const BCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
const mac = (n: number): number[] => [0x52, 0x54, 0, 0, 0, n];
const frame = (dst: number[], src: number[], tag: number): Uint8Array => Uint8Array.from([...dst, ...src, 0x08, 0x00, tag, ...new Array(45).fill(0)]);
const tags = (fs: Uint8Array[]): number[] => fs.map((f) => f[14]!);

async function rig() {
  const [uplink, far] = pair();
  const fromUplink: Uint8Array[] = [];
  await far.init((f) => fromUplink.push(f.slice()));
  const sw = new SharedSwitch(uplink);
  await sw.start();
  const seen: Uint8Array[][] = [[], [], []];
  const ports = [sw.port('a'), sw.port('b'), sw.port('c')];
  for (let i = 0; i < 3; i++) await ports[i]!.init((f) => seen[i]!.push(f.slice()));
  return { sw, far, fromUplink, ports, seen };
}

describe('shared switch (--shared)', () => {
  it('floods a broadcast from a client to the other clients and the uplink, not back to the sender', async () => {
    const { ports, seen, fromUplink } = await rig();
    ports[0]!.send(frame(BCAST, mac(1), 1));
    expect(tags(seen[0]!)).toEqual([]);
    expect(tags(seen[1]!)).toEqual([1]);
    expect(tags(seen[2]!)).toEqual([1]);
    expect(tags(fromUplink)).toEqual([1]);
  });

  it('sends unicast to a learnt MAC to that client only, and unknown unicast to the uplink', async () => {
    const { ports, seen, fromUplink } = await rig();
    ports[1]!.send(frame(BCAST, mac(2), 1)); // port b learns 52:54:00:00:00:02
    ports[0]!.send(frame(mac(2), mac(1), 2));
    ports[0]!.send(frame(mac(9), mac(1), 3));
    expect(tags(seen[1]!)).toEqual([2]);
    expect(tags(seen[2]!)).toEqual([1]);
    expect(tags(fromUplink)).toEqual([1, 3]);
  });

  it('delivers uplink frames to the learnt port, floods unknown ones, and forgets a closed port', async () => {
    const { sw, far, ports, seen } = await rig();
    ports[0]!.send(frame(BCAST, mac(1), 1));
    far.send(frame(mac(1), mac(0xee), 2));
    expect(tags(seen[0]!)).toEqual([2]);
    expect(tags(seen[1]!)).toEqual([1]);
    await ports[0]!.close();
    far.send(frame(mac(1), mac(0xee), 3));
    expect(tags(seen[1]!)).toEqual([1, 3]); // flooded: nobody owns the MAC any more
    expect(sw.floods).toBe(1);
    expect(sw.portCount).toBe(2);
  });
});
