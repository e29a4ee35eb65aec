/**
 * A container's place on a network: an address leased in the state root, a network namespace prepared before the
 * container starts (the init joins it), a veth pair from the namespace's `eth0` to the bridge, the address,
 * MTU and default route, and the /etc/hosts entries of the network's containers. Released when the container
 * exits or is removed; leases of containers that died with their owner are reclaimed by whoever looks next.
 * @module
 */
import { closeSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { native, type NetlinkOp } from '../native.js';
import type { ProcessIdentity } from '../container/state.js';
import { formatIPv4, lastAddress, macFromIPv4, parseCidr, parseIPv4, type Cidr } from './cidr.js';
import { AddressExhaustedError, NetworkSetupError } from './errors.js';
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
}

/** Who is attaching. */
export interface EndpointOwner {
  containerId: string;
  containerName: string;
  hostname: string;
  aliases: string[];
  owner: ProcessIdentity;
}

/** The host end's name: berth's prefix (leak checks and cleanup recognise it) and part of the container id. */
export function vethName(containerId: string): string {
  return `bveth${containerId.slice(0, 10)}`;
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
export async function attach(store: NetworkStore, net: NetworkRecord, who: EndpointOwner): Promise<{ nsFd: number; endpoint: EndpointRecord }> {
  const subnet = parseCidr(net.subnet) as Cidr;
  const veth = vethName(who.containerId);
  const lease = await store.locked(async () => {
    await reclaimStaleLeases(store, net);
    const ip = allocate(store, net, subnet);
    const l: Lease = {
      ip: formatIPv4(ip),
      networkId: net.id,
      containerId: who.containerId,
      containerName: who.containerName,
      names: [...new Set([who.containerName, ...who.aliases, who.containerId.slice(0, 12)])],
      owner: who.owner,
      veth,
      mac: macFromIPv4(ip),
    };
    if (!store.addLease(l)) throw new NetworkSetupError(`address ${l.ip} of network ${net.name} is already leased`);
    store.setCursor(net.id, ip);
    refreshHosts(store, net, who.containerId, who.hostname);
    return l;
  });
  let nsFd = -1;
  try {
    const [ns, sock] = await native.netnsCreate();
    nsFd = ns;
    try {
      await run(-1, [{ op: 'veth', name: veth, peer: 'eth0', peerNsFd: nsFd, master: net.bridge, mtu: net.mtu, up: true, peerMac: lease.mac }], net);
      const inside: NetlinkOp[] = [
        { op: 'link', name: 'lo', up: true },
        { op: 'link', name: 'eth0', up: true },
        { op: 'addr', name: 'eth0', address: lease.ip, prefix: subnet.prefix, broadcast: formatIPv4(lastAddress(subnet)) },
      ];
      if (!net.internal) inside.push({ op: 'route', name: 'eth0', prefix: 0, gateway: net.gateway });
      await run(sock, inside, net);
    } finally {
      closeSync(sock); // a socket pins its namespace: only the container may keep it alive
    }
  } catch (e) {
    if (nsFd >= 0) closeSync(nsFd);
    await releaseLease(store, net, lease);
    throw e;
  }
  return {
    nsFd,
    endpoint: {
      networkId: net.id,
      networkName: net.name,
      ipAddress: lease.ip,
      prefixLength: subnet.prefix,
      gateway: net.internal ? '' : net.gateway,
      macAddress: lease.mac,
      veth,
      aliases: [...who.aliases],
    },
  };
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
 * A container was renamed: its lease answers to the new name instead of the old one, and the hosts files of
 * the network's containers say so (Docker updates its DNS the same way).
 */
export async function renameEndpoint(store: NetworkStore, endpoint: EndpointRecord, containerId: string, oldName: string, newName: string): Promise<void> {
  await store.locked(() => {
    const net = store.read(endpoint.networkId);
    const lease = net && store.leases(net.id).find((l) => l.containerId === containerId);
    if (!net || !lease) return;
    store.replaceLease({ ...lease, containerName: newName, names: lease.names.map((n) => (n === oldName ? newName : n)) });
    refreshHosts(store, net);
  });
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
 * Rewrites the hosts file of every container holding a lease on `net` (under the store lock). On the default
 * network containers only know themselves, as on Docker's default bridge; on user networks they know each other
 * by name, alias and short id. `fresh` is a container whose file does not exist yet.
 */
function refreshHosts(store: NetworkStore, net: NetworkRecord, fresh?: string, freshHostname?: string): void {
  const leases = store.leases(net.id).filter((l) => l.containerId === fresh || store.leaseHeld(l));
  for (const l of leases) {
    const hostname = l.containerId === fresh ? freshHostname! : undefined;
    const own: HostEntry = { ip: l.ip, names: hostname ? [hostname] : [] };
    const peers = net.isDefault ? [] : leases.filter((p) => p !== l).map((p) => ({ ip: p.ip, names: p.names }));
    const path = hostsPath(store.root, l.containerId);
    if (l.containerId === fresh) writeNewFile(path, hostsFile(own, peers));
    else rewriteInPlace(path, replacePeers(path, peers));
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
    refreshHosts(store, net);
  });
}

/** Detaches a container: deletes its veth, frees its address, updates the other containers' hosts files. */
export async function detach(store: NetworkStore, endpoint: EndpointRecord, containerId: string): Promise<void> {
  const net = store.read(endpoint.networkId);
  const lease = net && store.leases(net.id).find((l) => l.ip === endpoint.ipAddress && l.containerId === containerId);
  if (!net || !lease) {
    await native.netlinkRun(-1, [{ op: 'delLink', name: endpoint.veth, ignoreMissing: true }]).catch(() => undefined);
    return;
  }
  await releaseLease(store, net, lease);
}
