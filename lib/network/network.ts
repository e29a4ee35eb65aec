/**
 * The `Network` API: user-defined bridge networks and the default `bridge` network. A network is a Linux bridge
 * with the gateway address, an nftables table for NAT and isolation, and its records (and address leases) in the
 * state root, shared by every process using that root.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { InvalidOptionsError } from '../errors.js';
import { native } from '../native.js';
import { defaultRoot, StateRoot, type ContainerState } from '../container/state.js';
import { ContainerNotFoundError } from '../errors.js';
import { connectContainer, disconnectContainer } from './container-network.js';
import type { EndpointRecord } from './endpoint.js';
import { toInvalidOptions } from '../container/options.js';
import { formatCidr, formatIPv4, lastAddress, overlaps, parseCidr, parseIPv4, type Cidr } from './cidr.js';
import { NetworkExistsError, NetworkInUseError, NetworkNotFoundError, NetworkSetupError, SubnetConflictError } from './errors.js';
import { bridgePresent, enableIpForwarding, hostBlocks, ipForwarding, linkExists } from './host.js';
import { withFileLock } from './lock.js';
import { installNetworkRules, pickFirewall, removeNetworkRules } from './nat.js';
import { NetworkStore, type NetworkRecord } from './store.js';
import { reclaimStaleLeases } from './endpoint.js';
import { recordEvent } from '../journal/events.js';

/** The default network's name, as Docker's. */
export const DEFAULT_NETWORK = 'bridge';

/** The default network's bridge in the default state root (Docker's is docker0). */
export const DEFAULT_BRIDGE = 'berth0';

/** Default MTU of bridges and veths (Docker's). */
export const DEFAULT_MTU = 1500;

/** The state root of root's berth: its default network gets the bridge `berth0`; other roots get `berth-<id>`. */
const SYSTEM_ROOT = '/var/lib/berth';

/** Serializes network creation and bridge changes across every state root of this host. */
const HOST_LOCK = '/run/berth/network.lock';

function hostLocked<T>(fn: () => Promise<T>): Promise<T> {
  mkdirSync(dirname(HOST_LOCK), { recursive: true, mode: 0o700 });
  return withFileLock(HOST_LOCK, fn);
}

/** Where subnets are picked from when none is given: Docker's default address pools. */
function* subnetPool(): Generator<Cidr> {
  for (let b = 17; b <= 31; b++) yield { network: parseIPv4(`172.${b}.0.0`)!, prefix: 16 };
  for (let c = 0; c < 256; c += 16) yield { network: parseIPv4(`192.168.${c}.0`)!, prefix: 20 };
}

const networkName = z
  .string()
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'must match [a-zA-Z0-9][a-zA-Z0-9_.-]*')
  .max(64)
  .refine((n) => !['host', 'none', 'default'].includes(n) && !n.startsWith('container:'), 'is reserved (host, none, default)');

/** Options of {@link Network.create}. */
export const networkOptionsSchema = z.strictObject({
  /** Unique name in the state root. */
  name: networkName,
  /** IPv4 block, e.g. `172.20.0.0/16` (default: the first free block of Docker's pools). */
  subnet: z.string().optional(),
  /** The bridge's address (default: the first address of the subnet). */
  gateway: z.string().optional(),
  /** No outbound access and no route out (Docker's `--internal`). */
  internal: z.boolean().optional(),
  /** MTU of the bridge and of containers' interfaces (default 1500). */
  mtu: z.number().int().min(68).max(65535).optional(),
  /** Turn on the host's IPv4 forwarding, as Docker's daemon does (default false; `BERTH_IP_FORWARD=1` too). */
  enableIpForward: z.boolean().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  /** State root (default: `BERTH_ROOT` or /var/lib/berth). */
  root: z.string().optional(),
});

/** Options of {@link Network.create}. */
export interface NetworkCreateOptions {
  /** Unique name in the state root: letters, digits, `_.-`. */
  name: string;
  /** IPv4 block such as `172.20.0.0/16`. Default: the first block of Docker's pools free on this host. */
  subnet?: string;
  /** The bridge's (gateway) address inside the subnet. Default: its first address. */
  gateway?: string;
  /** Isolated from everything outside the network: no NAT, no default route, no forwarding (Docker's `--internal`). */
  internal?: boolean;
  /** MTU of the bridge and the containers' interfaces (default 1500). */
  mtu?: number;
  /**
   * Turn on the host's `net.ipv4.ip_forward` (in this process's network namespace) so that containers reach beyond
   * the host, as Docker's daemon does by default. berth leaves the switch alone unless this (or the environment
   * variable `BERTH_IP_FORWARD=1`, which also covers the default `bridge` network) asks: it is host-wide and is
   * never turned off again. Ignored for `internal` networks.
   */
  enableIpForward?: boolean;
  labels?: Record<string, string>;
  /** State root (default: `BERTH_ROOT` or /var/lib/berth). */
  root?: string;
}

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const optionsMatch: Same<z.input<typeof networkOptionsSchema>, NetworkCreateOptions> = true;
void optionsMatch;

/** What `inspect()` and `list()` report about a network: its record, the containers on it, and warnings. */
export interface NetworkInfo extends Omit<NetworkRecord, 'natTable' | 'isDefault' | 'firewall'> {
  /** Where its NAT and isolation rules are: `nftables`, `iptables`, or `none` (neither tool installed). */
  firewall: 'nftables' | 'iptables' | 'none';
  /** Containers attached, with their addresses. */
  containers: { id: string; name: string; ipv4Address: string; macAddress: string }[];
  /** Things that keep the network from working fully on this host (e.g. IPv4 forwarding off). */
  warnings: string[];
}

/** A bridge network. */
export class Network {
  readonly id: string;
  readonly name: string;
  #store: NetworkStore;

  private constructor(store: NetworkStore, record: NetworkRecord) {
    this.#store = store;
    this.id = record.id;
    this.name = record.name;
  }

  /**
   * Creates a bridge network (like `docker network create`). Throws `InvalidOptionsError` for a bad name, CIDR or
   * gateway, `NetworkExistsError` for a taken name, `SubnetConflictError` when the subnet overlaps another
   * network or a route of the host. Nothing is left behind when it fails.
   */
  static async create(options: NetworkCreateOptions): Promise<Network> {
    const parsed = networkOptionsSchema.safeParse(options);
    if (!parsed.success) throw toInvalidOptions('network options', parsed.error);
    const o = parsed.data;
    const requested = checkAddressing(o.subnet, o.gateway);
    const store = storeFor(o.root).init();
    const record = await createNetwork(store, {
      name: o.name,
      ...(requested ? { subnet: requested.subnet, gateway: requested.gateway } : {}),
      internal: o.internal ?? false,
      mtu: o.mtu ?? DEFAULT_MTU,
      labels: o.labels ?? {},
      isDefault: false,
    });
    if (!record.internal && (o.enableIpForward || ipForwardRequested())) enableIpForwarding();
    recordEvent(store.root, 'network', 'create', record.id, { name: record.name, type: 'bridge' });
    return new Network(store, record);
  }

  /** The network of this name or id (the default `bridge` network is created on first use). */
  static async get(nameOrId: string, options: { root?: string } = {}): Promise<Network> {
    const store = storeFor(options.root);
    const record = nameOrId === DEFAULT_NETWORK ? await defaultNetwork(store) : store.find(nameOrId);
    if (!record) throw new NetworkNotFoundError(nameOrId);
    return new Network(store, record);
  }

  /** Every network of the state root (`docker network ls`). */
  static async list(options: { root?: string } = {}): Promise<NetworkInfo[]> {
    const store = storeFor(options.root);
    return store.list().map((r) => infoOf(store, r)).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** The network's record and the containers attached. */
  async inspect(): Promise<NetworkInfo> {
    const r = this.#store.read(this.id);
    if (!r) throw new NetworkNotFoundError(this.name);
    return infoOf(this.#store, r);
  }

  /**
   * Connects a created or running container to this network (`docker network connect`): it gets the next
   * interface (`eth1`, `eth2`, ...) with an address of this network and the route to its subnet (its default
   * route stays on its first network), and on user networks its name, `aliases` and short id resolve for the
   * network's containers (and theirs for it) through /etc/hosts. Any process sharing the state root may connect
   * a container, not only its owner. Throws `ContainerNotFoundError`, `ContainerStateError` (not running, or not
   * on a bridge network of its own), `EndpointExistsError` (already connected), `InvalidOptionsError`.
   */
  async connect(container: string | { readonly id: string }, options: { aliases?: string[] } = {}): Promise<EndpointRecord> {
    const parsed = connectOptionsSchema.safeParse(options);
    if (!parsed.success) throw toInvalidOptions('connect options', parsed.error);
    const r = this.#store.read(this.id);
    if (!r) throw new NetworkNotFoundError(this.name);
    await ensureBridge(r);
    const state = containerState(this.#store.root, container);
    const endpoint = await connectContainer(this.#store.root, r, state, parsed.data.aliases ?? []);
    recordEvent(this.#store.root, 'network', 'connect', r.id, { name: r.name, container: state.id, type: 'bridge' });
    return endpoint;
  }

  /**
   * Disconnects a container from this network (`docker network disconnect`): its interface on the network goes
   * away, its address is freed, and the network's containers and it stop resolving each other's names. Throws
   * `ContainerNotFoundError`, or `ContainerStateError` when it is not connected.
   */
  async disconnect(container: string | { readonly id: string }): Promise<void> {
    const r = this.#store.read(this.id);
    if (!r) throw new NetworkNotFoundError(this.name);
    const state = containerState(this.#store.root, container);
    await disconnectContainer(this.#store.root, r, state);
    recordEvent(this.#store.root, 'network', 'disconnect', r.id, { name: r.name, container: state.id, type: 'bridge' });
  }

  /**
   * Removes the network: its rules, its bridge and its records. Refused while containers are attached
   * (`NetworkInUseError`); leases of containers that are gone are reclaimed first.
   */
  async remove(): Promise<void> {
    await hostLocked(() =>
      this.#store.locked(async () => {
        const r = this.#store.read(this.id);
        if (!r) return;
        await reclaimStaleLeases(this.#store, r);
        const held = this.#store.leases(r.id);
        if (held.length) throw new NetworkInUseError(r.name, held.map((l) => l.containerName));
        await teardown(r);
        this.#store.remove(r.id);
        recordEvent(this.#store.root, 'network', 'destroy', r.id, { name: r.name, type: 'bridge' });
      }),
    );
  }
}

const connectOptionsSchema = z.strictObject({
  /** Extra names the container answers to on this network (Docker's `--alias`). */
  aliases: z.array(z.string().regex(/^[a-zA-Z0-9]([a-zA-Z0-9_.-]*[a-zA-Z0-9])?$/, 'must be a DNS name')).optional(),
});

/** A container of the state root, by id, unique id prefix, name, or `Container` object. */
function containerState(root: string, container: string | { readonly id: string }): ContainerState {
  const key = typeof container === 'string' ? container : container.id;
  const states = new StateRoot(root);
  const id = states.resolve(key);
  const state = id ? states.readState(id) : undefined;
  if (!state) throw new ContainerNotFoundError(key);
  return state;
}

function storeFor(root: string | undefined): NetworkStore {
  return new NetworkStore(resolve(root ?? defaultRoot()));
}

/** Validates a requested subnet and gateway; undefined when no subnet was given. */
function checkAddressing(subnet: string | undefined, gateway: string | undefined): { subnet: Cidr; gateway: number } | undefined {
  if (subnet === undefined) {
    if (gateway !== undefined) throw new InvalidOptionsError('network options', [{ path: 'gateway', message: 'a gateway needs a subnet' }]);
    return undefined;
  }
  const c = parseCidr(subnet);
  if (typeof c === 'string') throw new InvalidOptionsError('network options', [{ path: 'subnet', message: c }]);
  if (c.prefix > 30) throw new InvalidOptionsError('network options', [{ path: 'subnet', message: `/${c.prefix} is too small: use at most /30 (a gateway and one container)` }]);
  if (c.prefix < 8) throw new InvalidOptionsError('network options', [{ path: 'subnet', message: `/${c.prefix} is too large: use at least /8` }]);
  let gw = c.network + 1;
  if (gateway !== undefined) {
    const g = parseIPv4(gateway);
    if (g === undefined) throw new InvalidOptionsError('network options', [{ path: 'gateway', message: `"${gateway}" is not an IPv4 address` }]);
    if (!(g > c.network && g < lastAddress(c))) {
      throw new InvalidOptionsError('network options', [{ path: 'gateway', message: `${gateway} is not a usable address of ${subnet}` }]);
    }
    gw = g;
  }
  return { subnet: c, gateway: gw };
}

interface NewNetwork {
  name: string;
  subnet?: Cidr;
  gateway?: number;
  internal: boolean;
  mtu: number;
  labels: Record<string, string>;
  isDefault: boolean;
}

/** Picks or checks the subnet, builds bridge and rules, records the network; all or nothing. */
async function createNetwork(store: NetworkStore, n: NewNetwork): Promise<NetworkRecord> {
  return hostLocked(() =>
    store.locked(async () => {
      if (store.find(n.name)?.name === n.name) throw new NetworkExistsError(n.name);
      // This root's networks first: a clash with one of them is reported by its name.
      const taken = [
        ...store.list().map((r) => ({ ...(parseCidr(r.subnet) as Cidr), source: `network ${r.name}` })),
        ...hostBlocks(),
      ];
      let subnet = n.subnet;
      if (subnet) {
        const clash = taken.find((t) => overlaps(t, subnet!));
        if (clash) {
          throw new SubnetConflictError(`subnet ${formatCidr(subnet)} overlaps ${formatCidr(clash)} (${clash.source}): choose another subnet`);
        }
      } else {
        for (const candidate of subnetPool()) {
          if (!taken.some((t) => overlaps(t, candidate))) {
            subnet = candidate;
            break;
          }
        }
        if (!subnet) throw new SubnetConflictError('every subnet of the default pools is in use on this host: give a subnet');
      }
      const id = randomBytes(32).toString('hex');
      const inDefaultRoot = store.root === SYSTEM_ROOT;
      const bridge = n.isDefault && inDefaultRoot && !linkExists(DEFAULT_BRIDGE) ? DEFAULT_BRIDGE : `berth-${id.slice(0, 9)}`;
      const record: NetworkRecord = {
        id,
        name: n.name,
        driver: 'bridge',
        subnet: formatCidr(subnet),
        gateway: formatIPv4(n.gateway ?? subnet.network + 1),
        bridge,
        internal: n.internal,
        mtu: n.mtu,
        ...pickFirewall(id),
        isDefault: n.isDefault,
        labels: n.labels,
        createdAt: new Date().toISOString(),
      };
      await buildBridge(record);
      try {
        store.write(record);
      } catch (e) {
        await teardown(record).catch(() => undefined);
        throw e;
      }
      return record;
    }),
  );
}

/** Creates the bridge with its gateway address, then the nftables rules; undoes both on failure. */
async function buildBridge(r: NetworkRecord): Promise<void> {
  const c = parseCidr(r.subnet) as Cidr;
  try {
    await native.netlinkRun(-1, [
      { op: 'bridge', name: r.bridge, mtu: r.mtu, up: true },
      { op: 'addr', name: r.bridge, address: r.gateway, prefix: c.prefix, broadcast: formatIPv4(lastAddress(c)) },
    ]);
    await installNetworkRules(r);
  } catch (e) {
    await native.netlinkRun(-1, [{ op: 'delLink', name: r.bridge, ignoreMissing: true }]).catch(() => undefined);
    await removeNetworkRules(r).catch(() => undefined);
    if (e instanceof NetworkSetupError) throw e;
    throw new NetworkSetupError(`cannot create the bridge ${r.bridge} of network ${r.name}: ${(e as Error).message}`, { cause: e });
  }
}

/** Removes the network's rules and bridge (each only if present). */
async function teardown(r: NetworkRecord): Promise<void> {
  await removeNetworkRules(r);
  await native.netlinkRun(-1, [{ op: 'delLink', name: r.bridge, ignoreMissing: true }]);
}

/**
 * The network's bridge exists and is configured: after a reboot (records survive, interfaces do not) it is built
 * again from the record.
 */
export async function ensureBridge(r: NetworkRecord): Promise<void> {
  if (bridgePresent(r.bridge)) return;
  await hostLocked(async () => {
    if (bridgePresent(r.bridge)) return;
    // Whatever is left of it (a bridge without its address, rules without their bridge) is replaced whole.
    await teardown(r).catch(() => undefined);
    await buildBridge(r);
  });
}

/** The default `bridge` network of a state root, created on first use. */
export async function defaultNetwork(store: NetworkStore): Promise<NetworkRecord> {
  const existing = store.list().find((r) => r.isDefault);
  if (existing) return existing;
  try {
    const record = await createNetwork(store, { name: DEFAULT_NETWORK, internal: false, mtu: DEFAULT_MTU, labels: {}, isDefault: true });
    if (ipForwardRequested()) enableIpForwarding();
    return record;
  } catch (e) {
    // Another process created it meanwhile.
    const again = store.list().find((r) => r.isDefault);
    if (again && e instanceof NetworkExistsError) return again;
    throw e;
  }
}

/** The network a container asks for by name (`bridge` → the default network). */
export async function networkForContainer(store: NetworkStore, name: string): Promise<NetworkRecord> {
  const r = name === DEFAULT_NETWORK ? await defaultNetwork(store) : store.find(name);
  if (!r) throw new NetworkNotFoundError(name);
  await ensureBridge(r); // after a reboot the record is there and the bridge is not
  return r;
}

/** `BERTH_IP_FORWARD=1`: the environment's way to ask for Docker's forwarding switch (covers the default network). */
function ipForwardRequested(): boolean {
  return process.env.BERTH_IP_FORWARD === '1';
}

function infoOf(store: NetworkStore, r: NetworkRecord): NetworkInfo {
  const warnings: string[] = [];
  if (!r.internal && !ipForwarding()) {
    warnings.push('IPv4 forwarding is disabled on this host (net.ipv4.ip_forward=0): containers reach the host and each other, but not beyond; Docker enables it, berth does so only when asked (enableIpForward or BERTH_IP_FORWARD=1)');
  }
  if (!r.natTable && !r.internal) warnings.push('neither nftables (nft) nor iptables is installed: no outbound NAT and no isolation rules for this network');
  return {
    id: r.id,
    name: r.name,
    driver: r.driver,
    subnet: r.subnet,
    gateway: r.gateway,
    bridge: r.bridge,
    internal: r.internal,
    mtu: r.mtu,
    firewall: !r.natTable ? 'none' : r.firewall === 'iptables' ? 'iptables' : 'nftables',
    labels: { ...r.labels },
    createdAt: r.createdAt,
    containers: store
      .leases(r.id)
      .filter((l) => store.leaseHeld(l))
      .map((l) => ({ id: l.containerId, name: l.containerName, ipv4Address: `${l.ip}/${(parseCidr(r.subnet) as Cidr).prefix}`, macAddress: l.mac })),
    warnings,
  };
}
