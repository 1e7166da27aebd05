/**
 * A port process of the netmap benchmark (main.ts): `node --import tsx port-child.ts CONFIG MAC`
 * (forked, IPC). It attaches with createBackend(CONFIG), announces its MAC, then obeys:
 * `{cmd:'send', len, dst, ms}` → streams frames (load.ts) and replies `{type:'sent', …}`;
 * `{cmd:'reset'}` / `{cmd:'report'}` → the sink's counters; `{cmd:'close'}` → closes and exits.
 */
import { createBackend } from '@guestnet/core';
import { DrainWaiter, Sink, benchFrame, helloFrame, runSender } from './load.ts';

async function main(): Promise<void> {
  const config = process.argv[2]!;
  const me = Number(process.argv[3]);
  const sink = new Sink();
  const drain = new DrainWaiter();
  const b = await createBackend(config, { importer: (s) => import(s) });
  await b.init(sink.rx, drain.events);
  b.send(helloFrame(me));
  process.on('message', (raw) => {
    const m = raw as { cmd: string; len?: number; dst?: number; ms?: number };
    if (m.cmd === 'send') {
      void runSender(b, benchFrame(m.len!, me, m.dst!), m.ms!, drain).then((r) => process.send!({ type: 'sent', ...r }));
    } else if (m.cmd === 'reset') {
      sink.reset();
      process.send!({ type: 'reset' });
    } else if (m.cmd === 'report') {
      process.send!({ type: 'report', ...sink.report() });
    } else if (m.cmd === 'close') {
      void b.close().then(() => process.disconnect());
    }
  });
  process.send!({ type: 'ready' });
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
