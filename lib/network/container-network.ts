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
import { attach, detach, hostsPath, renameEndpoint, type EndpointRecord } from './endpoint.js';
import { hostsFile, writeNewFile } from './etc-files.js';
import { containerResolvConf } from './host.js';
import { networkForContainer, DEFAULT_NETWORK } from './network.js';
import { publishPorts, type PortBinding, type PortSpec, type PublishedPorts } from './ports.js';
import { NetworkStore } from './store.js';

/** What a container's state records about its networking. */
export interface ContainerNetworkRecord {
  /** `bridge`, `none`, `host`, `container:<id>` or the network's name, as asked. */
  mode: string;
  /** The bridge or user network the container is attached to, if any. */
  endpoint?: EndpointRecord;
  /** Published ports as bound. */
  ports: PortBinding[];
}

/** The networking options of a container (validated). */
export interface NetworkOptionsIn {
  network?: string | undefined;
  networkAliases?: string[] | undefined;
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
  if (o.ports?.length && o.detached) {
    throw issue('ports', 'published ports are served by the owning process and close with it: not available for detached containers yet');
  }
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
  const { nsFd, endpoint } = await attach(store, net, {
    containerId,
    containerName: args.containerName,
    hostname,
    aliases: o.networkAliases ?? [],
    owner: args.owner,
  });
  let published: PublishedPorts | undefined;
  try {
    if (o.ports?.length) published = await publishPorts(o.ports, endpoint.ipAddress);
  } catch (e) {
    closeSync(nsFd);
    await detach(store, endpoint, containerId);
    throw e;
  }
  let closed: Promise<void> | undefined;
  return {
    record: { mode, endpoint, ports: published?.bindings ?? [] },
    nsFd,
    mounts,
    closePorts: () => (closed ??= published ? published.close() : Promise.resolve()),
  };
}

/** Makes a renamed container known by its new name on its network. */
export async function renameContainerNetwork(root: string, containerId: string, record: ContainerNetworkRecord | undefined, oldName: string, newName: string): Promise<void> {
  if (!record?.endpoint) return;
  await renameEndpoint(new NetworkStore(root), record.endpoint, containerId, oldName, newName);
}

/** Frees a container's address and veth and updates its network's hosts files (exit, removal, dead owner). */
export async function releaseContainerNetwork(root: string, containerId: string, record: ContainerNetworkRecord | undefined): Promise<void> {
  if (!record?.endpoint) return;
  await detach(new NetworkStore(root), record.endpoint, containerId);
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}
