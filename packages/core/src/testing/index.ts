/**
 * `@guestnet/core/testing`: helpers for backend test suites (Node only, never imported by the
 * runtime): hand-built frames whose every length field can lie, a misbehaving guest-side TCP
 * peer, and heap figures after a forced GC for flood tests.
 */
export * from './raw-frames.ts';
export * from './raw-tcp.ts';
export * from './memory.ts';
