/**
 * Networking of one container, between the container module and the network module: turns the `network`,
 * `ports` and DNS options into namespace settings, a prepared namespace (bridge networks), bind-mounted
 * /etc/hosts, /etc/hostname and /etc/resolv.conf, and published ports; releases them at exit and removal.
 * @module
 */
import { closeSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidOptionsError } from '../errors.js';
import { ContainerNotFoundError, ContainerStateError } from '../errors.js';
import { isAlive, type ProcessIdentity } from '../container/state.js';
import {
  attach, attachLater, connectEndpoint, containerLeases, detach, disconnectEndpoint, endpointOf, hostsPath, renameEndpoint, type EndpointRecord,
} from './endpoint.js';
import { hostsFile, writeNewFile } from './etc-files.js';
import { containerResolvConf } from './host.js';
import { networkForContainer, DEFAULT_NETWORK } from './network.js';
import { publishPorts, type PortBinding, type PortSpec, type PublishedPorts } from './ports.js';
import { NetworkStore, type NetworkRecord } from './store.js';

/** What a container's state records about its networking. */
export interface ContainerNetworkRecord {
  /** `bridge`, `none`, `host`, `container:<id>` or the network's name, as asked. */
  mode: string;
  /** The bridge or user network the container was created on, if any. */
  endpoint?: EndpointRecord;
  /**
   * Every network the container has an address on now, its first one (`eth0`) first, then those connected
   * with `network.connect()` (`eth1`, ...). Filled in by `inspect()`; empty once it stopped.
   */
  networks?: EndpointRecord[];
  /** Published ports as bound. */
  ports: PortBinding[];
}

/** The networking options of a container (validated). */
export interface NetworkOptionsIn {
  network?: string | undefined;
  networkAliases?: string[] | undefined;
  networks?: { name: string; aliases?: string[] | undefined }[] | undefined;
  ports?: PortSpec[] | undefined;
  dns?: string[] | undefined;
  dnsSearch?: string[] | undefined;
  namespaces?: { network?: 'none' | 'host' | { path: string } | undefined } | undefined;
  detached?: boolean | undefined;
  hostname?: string | undefined;
}

/** How the spec's network namespace is set, from the `network` option. */
export type NamespaceChoice = 'none' | 'host' | { path: string } | undefined;

/** Looks up another container for `container:<id>` (by id, prefix or name): its init and its directory. */
export type ContainerLookup = (idOrName: string) => { id: string; name: string; process?: ProcessIdentity; status: string } | undefined;

/**
 * Checks the networking options and says how the spec's network namespace must be set. Throws
 * `InvalidOptionsError` for combinations Docker refuses too.
 */
export function networkNamespace(o: NetworkOptionsIn, lookup: ContainerLookup): { namespace: NamespaceChoice; joined?: { id: string } } {
  const mode = o.network;
  if (mode === undefined) return { namespace: o.namespaces?.network };
  const issue = (path: string, message: string) => new InvalidOptionsError('container options', [{ path, message }]);
  if (o.namespaces?.network !== undefined) throw issue('network', 'give either network or namespaces.network, not both');
  const bridged = !['none', 'host'].includes(mode) && !mode.startsWith('container:');
  if (o.ports?.length && !bridged) throw issue('ports', `ports can only be published on a bridge network, not with network "${mode}"`);
  if (o.networkAliases?.length && !bridged) throw issue('networkAliases', `aliases need a bridge network, not network "${mode}"`);
  if (o.networks?.length && !bridged) throw issue('networks', `more networks need a bridge network first, not network "${mode}" (as Docker)`);
  const names = [mode, ...(o.networks ?? []).map((n) => n.name)];
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice !== undefined) throw issue('networks', `network "${twice}" is given twice`);
  const defaultAliases = (o.networks ?? []).find((n) => n.name === DEFAULT_NETWORK && n.aliases?.length);
  if (defaultAliases) throw issue('networks', 'aliases only apply on user-defined networks (as Docker)');
  if (o.networkAliases?.length && mode === DEFAULT_NETWORK) throw issue('networkAliases', 'aliases only apply on user-defined networks (as Docker)');
  if (mode === 'none') return { namespace: 'none' };
  if (mode === 'host') return { namespace: 'host' };
  if (mode.startsWith('container:')) {
    if (o.hostname !== undefined) throw issue('hostname', 'a container sharing another container\'s network cannot set its own hostname (as Docker)');
    const target = mode.slice('container:'.length);
    const other = lookup(target);
    if (!other) throw new ContainerNotFoundError(target);
    if (other.status === 'exited' || !other.process || !isAlive(other.process)) {
      throw new ContainerStateError(`cannot join the network of container ${other.name}: it is not running`);
    }
    return { namespace: { path: `/proc/${other.process.pid}/ns/net` }, joined: { id: other.id } };
  }
  return { namespace: undefined };
}

/** The networking resources of a container being created. */
export interface ContainerNetworking {
  record: ContainerNetworkRecord;
  /** A prepared network namespace for the init to join (bridge networks); the caller closes it after spawning. */
  nsFd?: number;
  /**
   * Work to do through /proc/<pid>/ns/net after the clone and before the program starts: wiring the namespace
   * clone3 created for a container with a user namespace (owned by that user namespace; `nsFd` is then unset),
   * and connecting the other networks of `networks`.
   */
  wireInto?: (pid: number) => Promise<void>;
  /** OCI bind mounts for /etc/hosts, /etc/hostname, /etc/resolv.conf. */
  mounts: { destination: string; type: string; source: string; options: string[] }[];
  /** Closes the published ports (at exit). Idempotent. */
  closePorts(): Promise<void>;
}

/**
 * Sets up a new container's networking before it is spawned. For bridge networks: address, namespace, veth,
 * files, published ports. For the other modes: the files only (`container:` shares the other container's).
 * Everything is undone when it fails.
 */
export async function prepareContainerNetwork(args: {
  root: string;
  containerId: string;
  containerName: string;
  hostname: string | undefined;
  owner: ProcessIdentity;
  options: NetworkOptionsIn;
  joined?: { id: string } | undefined;
  /** The container has a user namespace: its network namespace is cloned with it and wired afterwards. */
  userns?: boolean;
  /** The address it had on its network before (a container started again): kept when still free. */
  preferredIp?: string | undefined;
}): Promise<ContainerNetworking | undefined> {
  const { root, containerId, options: o } = args;
  const mode = o.network;
  if (mode === undefined) return undefined; // the original behaviour: namespaces.network alone, no files
  const dir = join(root, 'containers', containerId);
  const bind = (name: string, target: string, source = join(dir, name)) => ({
    destination: target,
    type: 'bind',
    source,
    options: ['rbind', 'rprivate'],
  });
  const noPorts = { closePorts: async () => undefined };
  if (mode.startsWith('container:')) {
    const other = join(root, 'containers', args.joined!.id);
    const mounts = ['hosts', 'hostname', 'resolv.conf']
      .filter((f) => existsSync(join(other, f)))
      .map((f) => bind(f, `/etc/${f}`, join(other, f)));
    return { record: { mode, ports: [] }, mounts, ...noPorts };
  }
  const hostname = args.hostname ?? containerId.slice(0, 12);
  writeNewFile(join(dir, 'hostname'), `${hostname}\n`);
  const mounts = [bind('hostname', '/etc/hostname'), bind('resolv.conf', '/etc/resolv.conf'), bind('hosts', '/etc/hosts')];
  if (mode === 'host') {
    // The host's own files, copied (as Docker does): its resolvers are reachable from its own namespace.
    writeNewFile(join(dir, 'resolv.conf'), readOr('/etc/resolv.conf', containerResolvConf(o.dns ?? [], o.dnsSearch ?? [])));
    writeNewFile(hostsPath(root, containerId), readOr('/etc/hosts', hostsFile(undefined, [])));
    return { record: { mode, ports: [] }, mounts, ...noPorts };
  }
  writeNewFile(join(dir, 'resolv.conf'), containerResolvConf(o.dns ?? [], o.dnsSearch ?? []));
  if (mode === 'none') {
    writeNewFile(hostsPath(root, containerId), hostsFile(undefined, []));
    return { record: { mode, ports: [] }, mounts, ...noPorts };
  }
  const store = new NetworkStore(root);
  const net = await networkForContainer(store, mode);
  const who = { containerId, containerName: args.containerName, hostname, aliases: o.networkAliases ?? [], owner: args.owner };
  const attached = args.userns
    ? await attachLater(store, net, who, args.preferredIp)
    : await attach(store, net, who, args.preferredIp);
  const nsFd = 'nsFd' in attached ? attached.nsFd : undefined;
  const { endpoint } = attached;
  let extras: NetworkRecord[];
  try {
    extras = await Promise.all((o.networks ?? []).map((n) => networkForContainer(store, n.name)));
  } catch (e) {
    if (nsFd !== undefined) closeSync(nsFd);
    await detach(store, endpoint, containerId);
    throw e;
  }
  const wireInto = 'wireInto' in attached ? attached.wireInto : undefined;
  const connectExtras = async (target: number | { nsFd: number }) => {
    for (const [i, net] of extras.entries()) {
      await connectEndpoint(store, net, { ...who, aliases: o.networks![i]!.aliases ?? [] }, target);
    }
  };
  // The other networks go into the prepared namespace now; with a user namespace, into the one clone3 made,
  // through /proc/<pid>/ns/net, once the first network is wired there.
  const afterClone = wireInto
    ? async (pid: number) => {
      await wireInto(pid);
      await connectExtras(pid);
    }
    : undefined;
  if (nsFd !== undefined && extras.length) {
    try {
      await connectExtras({ nsFd });
    } catch (e) {
      closeSync(nsFd);
      await detach(store, endpoint, containerId);
      throw e;
    }
  }
  let published: PublishedPorts | undefined;
  try {
    if (o.ports?.length) published = await publishPorts(o.ports, endpoint.ipAddress);
  } catch (e) {
    if (nsFd !== undefined) closeSync(nsFd);
    await detach(store, endpoint, containerId);
    throw e;
  }
  let closed: Promise<void> | undefined;
  return {
    record: { mode, endpoint, ports: published?.bindings ?? [] },
    ...(nsFd !== undefined ? { nsFd } : {}),
    ...(afterClone ? { wireInto: afterClone } : {}),
    mounts,
    closePorts: () => (closed ??= published ? published.close() : Promise.resolve()),
  };
}

/** Makes a renamed container known by its new name on its network. */
export async function renameContainerNetwork(root: string, containerId: string, record: ContainerNetworkRecord | undefined, oldName: string, newName: string): Promise<void> {
  if (!record?.endpoint) return;
  await renameEndpoint(new NetworkStore(root), containerId, oldName, newName);
}

/**
 * Frees a container's addresses and veths on every network it is on and updates the networks' hosts files
 * (exit, removal, dead owner).
 */
export async function releaseContainerNetwork(root: string, containerId: string, record: ContainerNetworkRecord | undefined): Promise<void> {
  if (!record?.endpoint) return;
  await detach(new NetworkStore(root), record.endpoint, containerId);
}

/** The container's network record as `inspect()` shows it: with every network it has an address on now. */
export function networkInfo(root: string, containerId: string, record: ContainerNetworkRecord | undefined): ContainerNetworkRecord | null {
  if (!record) return null;
  if (!record.endpoint) return { ...record, networks: [] };
  const store = new NetworkStore(root);
  const networks = containerLeases(store, containerId)
    .filter(({ lease }) => store.leaseHeld(lease))
    .map(({ net, lease }) => endpointOf(net, lease));
  return { ...record, networks };
}

/** A container as {@link connectContainer} needs it (read from its state by the caller). */
export interface ConnectTarget {
  id: string;
  name: string;
  status: string;
  process?: ProcessIdentity | undefined;
  owner: ProcessIdentity;
  network?: ContainerNetworkRecord | undefined;
}

/**
 * Connects a container to one more network (`docker network connect`). Refused (`ContainerStateError`) unless
 * it is created or running on a bridge network of its own (as Docker: not `none`, `host` or `container:`);
 * `EndpointExistsError` when it is already on that network.
 */
export async function connectContainer(root: string, net: NetworkRecord, c: ConnectTarget, aliases: readonly string[]): Promise<EndpointRecord> {
  if (c.status === 'exited' || !c.process || !isAlive(c.process)) {
    throw new ContainerStateError(`cannot connect container ${c.name} to network ${net.name}: it is not running`);
  }
  if (!c.network?.endpoint) {
    const mode = c.network?.mode ?? 'the default (loopback only)';
    throw new ContainerStateError(`cannot connect container ${c.name} to network ${net.name}: its network mode is ${mode}; only containers created on a bridge network can join more networks (as Docker)`);
  }
  if (aliases.length && net.isDefault) {
    throw new InvalidOptionsError('connect options', [{ path: 'aliases', message: 'aliases only apply on user-defined networks (as Docker)' }]);
  }
  return connectEndpoint(new NetworkStore(root), net, {
    containerId: c.id, containerName: c.name, hostname: c.name, aliases: [...aliases], owner: c.owner,
  }, c.process.pid);
}

/**
 * Disconnects a container from a network (`docker network disconnect`). Throws `ContainerStateError` when it
 * is not on that network; its first network can be left too (it then has only the others, or loopback).
 */
export async function disconnectContainer(root: string, net: NetworkRecord, c: { id: string; name: string }): Promise<void> {
  if (!(await disconnectEndpoint(new NetworkStore(root), net, c.id))) {
    throw new ContainerStateError(`container ${c.name} is not connected to network ${net.name}`);
  }
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}
