/**
 * Child process of shm.test.ts: maps the shared file named on the command line, checks the
 * parent's words, writes its own and bumps a counter with Atomics, then reports over IPC.
 * Run with `node --import tsx` (forked by the test).
 */
import { openSharedFile } from './shm.ts';

const path = process.argv[2];
if (!path || !process.send) throw new Error('usage: forked with the shared file path');
const mem = openSharedFile(path);
const words = new Int32Array(mem);
// The parent wrote 0x1234 at word 1 before forking.
const sawParent = Atomics.load(words, 1);
Atomics.store(words, 2, 0x5678);
for (let i = 0; i < 1000; i++) Atomics.add(words, 0, 1);
process.send({ sawParent, byteLength: mem.byteLength }, () => process.exit(0));
