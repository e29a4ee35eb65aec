/**
 * Networks and address leases recorded in the state root, so that every process sharing the root sees the same
 * networks and never hands out one address twice.
 *
 * Layout: `<root>/networks/<id>/network.json`, `<root>/networks/<id>/leases/<ip>` (one file per address in use,
 * created exclusively), `<root>/networks/<id>/cursor` (the last address handed out: allocation goes round the
 * block, as Docker's, so a just-freed address is not reused at once). Changes happen under `<root>/networks/.lock`.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isAlive, type ProcessIdentity } from '../container/state.js';
import { withFileLock } from './lock.js';

/** What is recorded about a network. */
export interface NetworkRecord {
  id: string;
  name: string;
  driver: 'bridge';
  /** `a.b.c.d/n`. */
  subnet: string;
  gateway: string;
  /** The host's bridge interface. */
  bridge: string;
  /** No outbound NAT, no route out, no forwarding to or from other networks. */
  internal: boolean;
  mtu: number;
  /**
   * The nftables table holding the network's rules (`ip <name>`), or with `firewall: 'iptables'` the name of its
   * iptables chains; null when it has none.
   */
  natTable: string | null;
  /** Where its rules are: nftables (absent) or iptables (hosts without `nft`). */
  firewall?: 'iptables';
  /** The default network (`bridge`): no name resolution between containers, as Docker's default bridge. */
  isDefault: boolean;
  labels: Record<string, string>;
  createdAt: string;
}

/** One address in use by one container. */
export interface Lease {
  ip: string;
  networkId: string;
  containerId: string;
  containerName: string;
  /** Names other containers of the network resolve to this address (the name, then aliases). */
  names: string[];
  /** The process that created the container (the lease is reclaimed once it and the container are gone). */
  owner: ProcessIdentity;
  /** Host end of the container's veth pair. */
  veth: string;
  mac: string;
  /** The interface inside the container (absent in older records: `eth0`). */
  iface?: string;
  /** The aliases asked for on this network. */
  aliases?: string[];
}

/** The records of one state root. */
export class NetworkStore {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  get dir(): string {
    return join(this.root, 'networks');
  }

  /** Creates the state root's network directory (for a root that does not exist yet). */
  init(): this {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    return this;
  }

  /** Runs `fn` holding the root's network lock (records, leases and hosts files change only under it). */
  locked<T>(fn: () => Promise<T> | T): Promise<T> {
    // The state root itself must exist: work left for a root that was deleted meanwhile must not recreate it.
    if (!existsSync(this.root)) return Promise.reject(new Error(`state root ${this.root} does not exist`));
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    return withFileLock(join(this.dir, '.lock'), fn);
  }

  list(): NetworkRecord[] {
    const out: NetworkRecord[] = [];
    for (const id of this.#ids()) {
      const r = this.read(id);
      if (r) out.push(r);
    }
    return out;
  }

  read(id: string): NetworkRecord | undefined {
    try {
      return JSON.parse(readFileSync(join(this.dir, id, 'network.json'), 'utf8')) as NetworkRecord;
    } catch {
      return undefined;
    }
  }

  /** By exact name, full id, or unique id prefix (at least 3 characters). */
  find(nameOrId: string): NetworkRecord | undefined {
    const all = this.list();
    const byName = all.find((n) => n.name === nameOrId);
    if (byName) return byName;
    if (/^[0-9a-f]{3,64}$/.test(nameOrId)) {
      const m = all.filter((n) => n.id.startsWith(nameOrId));
      if (m.length === 1) return m[0];
    }
    return undefined;
  }

  write(record: NetworkRecord): void {
    const dir = join(this.dir, record.id);
    mkdirSync(join(dir, 'leases'), { recursive: true, mode: 0o700 });
    const tmp = join(dir, `.network.${randomBytes(4).toString('hex')}`);
    writeFileSync(tmp, JSON.stringify(record), { mode: 0o600 });
    renameSync(tmp, join(dir, 'network.json'));
  }

  remove(id: string): void {
    const trash = join(this.dir, `.removing-${id}-${randomBytes(4).toString('hex')}`);
    try {
      renameSync(join(this.dir, id), trash);
    } catch {
      return;
    }
    rmSync(trash, { recursive: true, force: true });
  }

  leases(networkId: string): Lease[] {
    const dir = join(this.dir, networkId, 'leases');
    let names: string[] = [];
    try {
      names = readdirSync(dir);
    } catch {
      return [];
    }
    const out: Lease[] = [];
    for (const n of names) {
      try {
        out.push(JSON.parse(readFileSync(join(dir, n), 'utf8')) as Lease);
      } catch {
        // half-written by a process that died: its creator wrote it under the lock, so it is garbage
        try {
          unlinkSync(join(dir, n));
        } catch {
          // gone
        }
      }
    }
    return out;
  }

  /** Rewrites an existing lease atomically (a renamed container). */
  replaceLease(lease: Lease): void {
    // The temp file stays outside leases/, which readers list.
    const tmp = join(this.dir, lease.networkId, `.lease.${randomBytes(4).toString('hex')}`);
    writeFileSync(tmp, JSON.stringify(lease), { mode: 0o600 });
    renameSync(tmp, join(this.dir, lease.networkId, 'leases', lease.ip));
  }

  /** Records a lease; false when the address is already leased. */
  addLease(lease: Lease): boolean {
    try {
      writeFileSync(join(this.dir, lease.networkId, 'leases', lease.ip), JSON.stringify(lease), { mode: 0o600, flag: 'wx' });
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    }
  }

  removeLease(networkId: string, ip: string): void {
    try {
      unlinkSync(join(this.dir, networkId, 'leases', ip));
    } catch {
      // already gone
    }
  }

  cursor(networkId: string): number | undefined {
    try {
      const n = Number(readFileSync(join(this.dir, networkId, 'cursor'), 'utf8'));
      return Number.isInteger(n) ? n : undefined;
    } catch {
      return undefined;
    }
  }

  setCursor(networkId: string, value: number): void {
    writeFileSync(join(this.dir, networkId, 'cursor'), String(value), { mode: 0o600 });
  }

  /**
   * Whether a lease's container still holds it: its directory exists and it has not exited (its init is alive,
   * or, before the init was recorded, its creator is) or is being started again (by the lease's creator).
   */
  leaseHeld(lease: Lease): boolean {
    const dir = join(this.root, 'containers', lease.containerId);
    if (!existsSync(dir)) return false;
    let state: { status?: string; process?: ProcessIdentity; restarting?: boolean } | undefined;
    try {
      state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'));
    } catch {
      return isAlive(lease.owner);
    }
    if (state?.status === 'exited' && !state.restarting) return false;
    return state?.process ? isAlive(state.process) : isAlive(lease.owner);
  }

  #ids(): string[] {
    try {
      return readdirSync(this.dir).filter((d) => /^[0-9a-f]{64}$/.test(d));
    } catch {
      return [];
    }
  }
}
