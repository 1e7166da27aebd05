/**
 * `@guestnet/netmap/node`: the cross-process half, Node only — a switch served to other processes
 * over a unix socket (`SwitchServer`), attaching to one (`tryAttachRemote`, `RemotePortBackend`),
 * and the shared-memory files behind it (native helper, loaded on first use). Kept out of the
 * main entry so that the rings, the switch and the worker-thread API stay free of Node-only
 * imports and of the native addon.
 */
export {
  SwitchServer,
  defaultSwitchSocket,
  switchSocketDir,
  sweepStaleShm,
  checkSwitchName,
  VALE_PROTOCOL_VERSION,
  type SwitchServerOptions,
  type ServedPort,
  type AttachRequest,
  type AttachReply,
} from './server.ts';
export { tryAttachRemote, attachRemote, remoteSwitchStats, RemotePortBackend, type RemoteAttachOptions, type RemoteAttachInput } from './remote.ts';
export { createSharedFile, openSharedFile, unlinkSharedFile, shmAvailable, loadShmAddon, liveMappings, defaultShmDir } from './shm.ts';
export { SocketKicks, KICK } from './socket-doorbell.ts';
