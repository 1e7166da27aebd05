/**
 * @guestnet/wire — zero-copy packet views and builders, one module per protocol.
 *
 * Each module has a field-offset table, a reusable view whose lengths are checked once by
 * `reset()` (after which accessors cannot read out of bounds), and a repr with parse/emit.
 * Nothing here allocates on the view paths, imports Node, or throws on malformed input.
 */
export * from './addr.ts';
export * from './checksum.ts';
export * from './ethernet.ts';
export * from './arp.ts';
export * from './ipv4.ts';
export * from './ipv6.ts';
export * from './icmpv4.ts';
export * from './icmpv6.ts';
export * from './ndp.ts';
export * from './udp.ts';
export * from './tcp.ts';
export * from './dhcpv4.ts';
export * from './dhcpv6.ts';
export * from './dns.ts';
export * from './tftp.ts';
export * from './virtio-net.ts';
export * from './gso.ts';
