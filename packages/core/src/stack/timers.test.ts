import { describe, expect, it } from 'vitest';
import { ManualClock, TimerEntry, TimerQueue } from './timers.ts';

describe('TimerQueue', () => {
  it('fires entries in deadline order with one host timer', () => {
    const clock = new ManualClock(0);
    const q = new TimerQueue(clock);
    const fired: string[] = [];
    const a = new TimerEntry(() => fired.push('a'));
    const b = new TimerEntry(() => fired.push('b'));
    const c = new TimerEntry(() => fired.push('c'));
    q.schedule(a, 30);
    q.schedule(b, 10);
    q.schedule(c, 20);
    clock.advance(15);
    expect(fired).toEqual(['b']);
    clock.advance(100);
    expect(fired).toEqual(['b', 'c', 'a']);
  });

  it('reschedules and cancels without firing stale deadlines', () => {
    const clock = new ManualClock(0);
    const q = new TimerQueue(clock);
    let n = 0;
    const e = new TimerEntry(() => n++);
    q.schedule(e, 10);
    q.schedule(e, 50);
    clock.advance(20);
    expect(n).toBe(0);
    q.cancel(e);
    clock.advance(100);
    expect(n).toBe(0);
    expect(q.size).toBe(0);
  });

  it('lets an entry reschedule itself from its callback', () => {
    const clock = new ManualClock(0);
    const q = new TimerQueue(clock);
    const at: number[] = [];
    const e: TimerEntry = new TimerEntry((now) => {
      at.push(now);
      if (at.length < 3) q.schedule(e, now + 10);
    });
    q.schedule(e, 10);
    clock.advance(100);
    expect(at).toEqual([10, 20, 30]);
  });

  it('keeps heap order under random operations', () => {
    const clock = new ManualClock(0);
    const q = new TimerQueue(clock);
    const fired: number[] = [];
    const entries = Array.from({ length: 200 }, (_, i) => new TimerEntry(() => fired.push(i)));
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 1000) + 1;
    const want = new Map<number, number>();
    for (let k = 0; k < 1000; k++) {
      const i = rnd() % 200;
      if (rnd() % 5 === 0) {
        q.cancel(entries[i]!);
        want.delete(i);
      } else {
        const t = rnd();
        q.schedule(entries[i]!, t);
        want.set(i, t);
      }
    }
    clock.advance(2000);
    const order = [...want.entries()].sort((x, y) => x[1] - y[1]).map((x) => x[1]);
    expect(fired.map((i) => want.get(i))).toEqual(order);
  });
});
