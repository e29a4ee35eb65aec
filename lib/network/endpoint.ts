/**
 * A container's place on a network: an address leased in the state root, a network namespace prepared before the
 * container starts (the init joins it), a veth pair from the namespace's `eth0` to the bridge, the address,
 * MTU and default route, and the /etc/hosts entries of the network's containers. Released when the container
 * exits or is removed; leases of containers that died with their owner are reclaimed by whoever looks next.
 * @module
 */
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { native, type NetlinkOp } from '../native.js';
import type { ProcessIdentity } from '../container/state.js';
import { formatIPv4, lastAddress, macFromIPv4, parseCidr, parseIPv4, type Cidr } from './cidr.js';
import { AddressExhaustedError, EndpointExistsError, NetworkSetupError } from './errors.js';
import { hostsFile, rewriteInPlace, writeNewFile, type HostEntry } from './etc-files.js';
import type { Lease, NetworkRecord, NetworkStore } from './store.js';

/** What a container's record keeps about one of its networks (shown by `inspect()`). */
export interface EndpointRecord {
  networkId: string;
  networkName: string;
  ipAddress: string;
  prefixLength: number;
  /** Empty on internal networks (no route out). */
  gateway: string;
  macAddress: string;
  /** Host end of the veth pair. */
  veth: string;
  aliases: string[];
  /** The interface inside the container: `eth0` for the network it was created on, `eth1`... for connected ones. */
  interface?: string;
}

/** Who is attaching. */
export interface EndpointOwner {
  containerId: string;
  containerName: string;
  hostname: string;
  aliases: string[];
  owner: ProcessIdentity;
}

/**
 * The host end's name: berth's prefix (leak checks and cleanup recognise it) and part of the container id; the
 * veths of networks connected later (`eth1`...) end in `-<n>` (15 characters at most, the kernel's limit).
 */
export function vethName(containerId: string, iface = 'eth0'): string {
  if (iface === 'eth0') return `bveth${containerId.slice(0, 10)}`;
  return `bveth${containerId.slice(0, 8)}-${iface.slice(3)}`;
}

/** Where a container's hosts file lives. */
export function hostsPath(root: string, containerId: string): string {
  return join(root, 'containers', containerId, 'hosts');
}

/**
 * Attaches a new container: leases an address, writes the hosts files, creates the network namespace and wires
 * it. Returns the namespace fd (the init joins it; close it after spawning) and the endpoint record. On failure
 * nothing is left.
 */
export async function attach(store: NetworkStore, net: NetworkRecord, who: EndpointOwner, preferredIp?: string): Promise<{ nsFd: number; endpoint: EndpointRecord }> {
  const lease = await leaseAddress(store, net, who, 'eth0', who.hostname, preferredIp);
  let nsFd = -1;
  try {
    const [ns, sock] = await native.netnsCreate();
    nsFd = ns;
    await wire(ns, sock, net, lease, 'eth0');
  } catch (e) {
    if (nsFd >= 0) closeSync(nsFd);
    await releaseLease(store, net, lease);
    throw e;
  }
  return { nsFd, endpoint: endpointOf(net, lease) };
}

/**
 * Attaches a new container whose network namespace clone3 creates (a container with a user namespace: its
 * network namespace must belong to that user namespace). The address and hosts files are made now; `wireInto`
 * wires the namespace of the cloned init through /proc/<pid>/ns/net before the container's program starts.
 */
export async function attachLater(store: NetworkStore, net: NetworkRecord, who: EndpointOwner, preferredIp?: string): Promise<{ endpoint: EndpointRecord; wireInto(pid: number): Promise<void> }> {
  const lease = await leaseAddress(store, net, who, 'eth0', who.hostname, preferredIp);
  return {
    endpoint: endpointOf(net, lease),
    wireInto: (pid) => wireIntoProcess(pid, net, lease, 'eth0'),
  };
}

/**
 * Connects a running (or created) container to one more network (`docker network connect`): the next free
 * `ethN` inside its namespace, reached through /proc/<pid>/ns/net (its owner may be another process) or given
 * as an fd (a namespace prepared for a container being created), an address
 * of the network with the route to its subnet only (the default route stays on the first network), and the
 * hosts files of both sides. Undone when it fails.
 */
export async function connectEndpoint(store: NetworkStore, net: NetworkRecord, who: EndpointOwner, target: number | { nsFd: number }): Promise<EndpointRecord> {
  const used = new Set(containerLeases(store, who.containerId).map(({ lease }) => lease.iface ?? 'eth0'));
  let n = 1;
  while (used.has(`eth${n}`)) n++;
  const iface = `eth${n}`;
  const lease = await leaseAddress(store, net, who, iface);
  try {
    if (typeof target === 'number') await wireIntoProcess(target, net, lease, iface);
    else await wire(target.nsFd, await native.netnsSocket(target.nsFd), net, lease, iface);
  } catch (e) {
    await releaseLease(store, net, lease);
    throw e;
  }
  return endpointOf(net, lease);
}

/** Every lease a container holds, on every network of the store (the first network's first). */
export function containerLeases(store: NetworkStore, containerId: string): { net: NetworkRecord; lease: Lease }[] {
  const out: { net: NetworkRecord; lease: Lease }[] = [];
  for (const net of store.list()) {
    for (const lease of store.leases(net.id)) if (lease.containerId === containerId) out.push({ net, lease });
  }
  return out.sort((a, b) => ifaceIndex(a.lease) - ifaceIndex(b.lease));
}

function ifaceIndex(l: Lease): number {
  return Number((l.iface ?? 'eth0').slice(3));
}

/** The endpoint record of a lease (what inspect() shows). */
export function endpointOf(net: NetworkRecord, lease: Lease): EndpointRecord {
  return {
    networkId: net.id,
    networkName: net.name,
    ipAddress: lease.ip,
    prefixLength: (parseCidr(net.subnet) as Cidr).prefix,
    gateway: net.internal ? '' : net.gateway,
    macAddress: lease.mac,
    veth: lease.veth,
    aliases: [...(lease.aliases ?? [])],
    interface: lease.iface ?? 'eth0',
  };
}

/**
 * Leases `preferredIp` when it is free (a container started again keeps its address, as Docker tries to), else the
 * next free address of `net`, and updates the hosts files (a new container's when `freshHostname`).
 */
async function leaseAddress(store: NetworkStore, net: NetworkRecord, who: EndpointOwner, iface: string, freshHostname?: string, preferredIp?: string): Promise<Lease> {
  const subnet = parseCidr(net.subnet) as Cidr;
  return store.locked(async () => {
    await reclaimStaleLeases(store, net);
    if (store.leases(net.id).some((l) => l.containerId === who.containerId && store.leaseHeld(l))) {
      throw new EndpointExistsError(who.containerName, net.name);
    }
    const ip = (preferredIp !== undefined && freeAddress(store, net, subnet, preferredIp)) || allocate(store, net, subnet);
    const l: Lease = {
      ip: formatIPv4(ip),
      networkId: net.id,
      containerId: who.containerId,
      containerName: who.containerName,
      names: [...new Set([who.containerName, ...who.aliases, who.containerId.slice(0, 12)])],
      owner: who.owner,
      veth: vethName(who.containerId, iface),
      mac: macFromIPv4(ip),
      iface,
      aliases: [...who.aliases],
    };
    if (!store.addLease(l)) throw new NetworkSetupError(`address ${l.ip} of network ${net.name} is already leased`);
    store.setCursor(net.id, ip);
    refreshHosts(store, net, freshHostname !== undefined ? { id: who.containerId, hostname: freshHostname } : undefined, [who.containerId]);
    return l;
  });
}

/** Wires the namespace of process `pid` (opened through /proc, joined from a short-lived thread). */
async function wireIntoProcess(pid: number, net: NetworkRecord, lease: Lease, iface: string): Promise<void> {
  let nsFd: number;
  try {
    nsFd = openSync(`/proc/${pid}/ns/net`, 'r');
  } catch (e) {
    throw new NetworkSetupError(`cannot reach the network namespace of process ${pid}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const sock = await native.netnsSocket(nsFd);
    await wire(nsFd, sock, net, lease, iface);
  } finally {
    closeSync(nsFd);
  }
}

/**
 * Creates the veth pair (peer `iface` directly in the namespace `nsFd`, host end on the bridge), brings it up
 * with the address; `eth0` also gets the default route (except on internal networks). Closes `sock`.
 */
async function wire(nsFd: number, sock: number, net: NetworkRecord, lease: Lease, iface: string): Promise<void> {
  const subnet = parseCidr(net.subnet) as Cidr;
  try {
    await run(-1, [{ op: 'veth', name: lease.veth, peer: iface, peerNsFd: nsFd, master: net.bridge, mtu: net.mtu, up: true, peerMac: lease.mac }], net);
    const inside: NetlinkOp[] = [
      { op: 'link', name: 'lo', up: true },
      { op: 'link', name: iface, up: true },
      { op: 'addr', name: iface, address: lease.ip, prefix: subnet.prefix, broadcast: formatIPv4(lastAddress(subnet)) },
    ];
    if (!net.internal && iface === 'eth0') inside.push({ op: 'route', name: iface, prefix: 0, gateway: net.gateway });
    await run(sock, inside, net);
  } finally {
    closeSync(sock); // a socket pins its namespace: only the container may keep it alive
  }
}

async function run(fd: number, ops: NetlinkOp[], net: NetworkRecord): Promise<void> {
  try {
    await native.netlinkRun(fd, ops);
  } catch (e) {
    const err = e as Error & { index?: number };
    const op = ops[err.index ?? -1];
    throw new NetworkSetupError(`cannot connect the container to network ${net.name}${op ? ` (${op.op} ${op.name ?? ''})` : ''}: ${err.message}`, { cause: e });
  }
}

/**
 * A container was renamed: its leases (on every network) answer to the new name instead of the old one, and the
 * hosts files of the networks' containers say so (Docker updates its DNS the same way).
 */
export async function renameEndpoint(store: NetworkStore, containerId: string, oldName: string, newName: string): Promise<void> {
  await store.locked(() => {
    for (const { net, lease } of containerLeases(store, containerId)) {
      store.replaceLease({ ...lease, containerName: newName, names: lease.names.map((n) => (n === oldName ? newName : n)) });
      refreshHosts(store, net);
    }
  });
}

/** `ip` as a number when it is a usable address of the subnet that no lease holds, else undefined. */
function freeAddress(store: NetworkStore, net: NetworkRecord, subnet: Cidr, ip: string): number | undefined {
  const n = parseIPv4(ip);
  if (n === undefined || n <= subnet.network || n >= lastAddress(subnet) || n === parseIPv4(net.gateway)) return undefined;
  return store.leases(net.id).some((l) => parseIPv4(l.ip) === n) ? undefined : n;
}

/** The next free address after the cursor, going round the block (network, gateway and broadcast excluded). */
function allocate(store: NetworkStore, net: NetworkRecord, subnet: Cidr): number {
  const first = subnet.network + 1;
  const last = lastAddress(subnet) - 1;
  const gateway = parseIPv4(net.gateway)!;
  const used = new Set(store.leases(net.id).map((l) => parseIPv4(l.ip)));
  const size = last - first + 1;
  const start = store.cursor(net.id) ?? first - 1;
  for (let i = 1; i <= size; i++) {
    const ip = first + ((((start - first + i) % size) + size) % size);
    if (ip !== gateway && !used.has(ip)) return ip;
  }
  throw new AddressExhaustedError(net.name, net.subnet);
}

/**
 * Rewrites the hosts file of every container holding a lease on `net`, and of the containers in `also` (under
 * the store lock). A container's peers are the other containers of each of its user networks, with their name,
 * alias and short id; on the default network containers only know themselves, as on Docker's default bridge.
 * `fresh` is a new container whose file does not exist yet.
 */
function refreshHosts(store: NetworkStore, net: NetworkRecord, fresh?: { id: string; hostname: string }, also: readonly string[] = []): void {
  const nets = store.list();
  const held = new Map<string, Lease[]>();
  for (const n of nets) held.set(n.id, store.leases(n.id).filter((l) => l.containerId === fresh?.id || store.leaseHeld(l)));
  const targets = new Set([...(held.get(net.id) ?? []).map((l) => l.containerId), ...also]);
  for (const id of targets) {
    const peers: HostEntry[] = [];
    for (const n of nets) {
      const leases = held.get(n.id) ?? [];
      if (n.isDefault || !leases.some((l) => l.containerId === id)) continue;
      for (const p of leases) if (p.containerId !== id) peers.push({ ip: p.ip, names: p.names });
    }
    const path = hostsPath(store.root, id);
    if (id === fresh?.id) {
      const own = held.get(net.id)?.find((l) => l.containerId === id);
      writeNewFile(path, hostsFile(own && { ip: own.ip, names: [fresh.hostname] }, peers));
    } else rewriteInPlace(path, replacePeers(path, peers));
  }
}

/** Keeps a hosts file's own lines (everything up to and including the first non-localhost entry) and replaces the peers. */
function replacePeers(path: string, peers: readonly HostEntry[]): string {
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return hostsFile(undefined, peers);
  }
  const lines = text.split('\n').filter((l) => l);
  const LOCAL = 6; // localhost lines written by hostsFile
  const head = lines.slice(0, LOCAL + 1);
  return `${[...head, ...peers.map((p) => `${p.ip}\t${p.names.join(' ')}`)].join('\n')}\n`;
}

/** Removes the leases of containers that are gone (deleting their host veth, in case their namespace lingers). */
export async function reclaimStaleLeases(store: NetworkStore, net: NetworkRecord): Promise<void> {
  const stale = store.leases(net.id).filter((l) => !store.leaseHeld(l));
  if (!stale.length) return;
  await native.netlinkRun(-1, stale.map((l) => ({ op: 'delLink' as const, name: l.veth, ignoreMissing: true })));
  for (const l of stale) store.removeLease(net.id, l.ip);
  refreshHosts(store, net);
}

async function releaseLease(store: NetworkStore, net: NetworkRecord, lease: Lease): Promise<void> {
  // The veth goes first: its address must not be handed out while an interface still carries it.
  await native.netlinkRun(-1, [{ op: 'delLink', name: lease.veth, ignoreMissing: true }]).catch(() => undefined);
  await store.locked(() => {
    store.removeLease(net.id, lease.ip);
    refreshHosts(store, net, undefined, [lease.containerId]);
  });
}

/**
 * Detaches a container from every network (exit, removal, dead owner): deletes its veths, frees its addresses,
 * updates the other containers' hosts files. `endpoint` is the first network's, as recorded in its state.
 */
export async function detach(store: NetworkStore, endpoint: EndpointRecord | undefined, containerId: string): Promise<void> {
  const held = containerLeases(store, containerId);
  if (endpoint && !held.some(({ lease }) => lease.veth === endpoint.veth)) {
    await native.netlinkRun(-1, [{ op: 'delLink', name: endpoint.veth, ignoreMissing: true }]).catch(() => undefined);
  }
  for (const { net, lease } of held) await releaseLease(store, net, lease);
}

/**
 * Disconnects a container from one network (`docker network disconnect`): its veth goes (the interface vanishes
 * from the container), its address is freed, and both sides' hosts files forget each other. False when the
 * container holds no address on that network.
 */
export async function disconnectEndpoint(store: NetworkStore, net: NetworkRecord, containerId: string): Promise<boolean> {
  const lease = store.leases(net.id).find((l) => l.containerId === containerId);
  if (!lease) return false;
  await releaseLease(store, net, lease);
  return true;
}
