/**
 * The state root: where containers are recorded so that other processes (and later runs) can list, inspect and
 * clean them up. Several processes may share one root, so every change is an atomic rename or an exclusive
 * create, and nothing half-written is ever trusted.
 *
 * Layout: `<root>/containers/<id>/state.json`, `<root>/names/<name>` (a symlink to the id).
 * @module
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { BerthError, ContainerNotFoundError, NameConflictError } from '../errors.js';
import { native } from '../native.js';
import type { IdMapping } from './userns/idmap.js';
import type { ContainerNetworkRecord } from '../network/container-network.js';
import { stateJson } from './state-json.js';
import type { LogConfig } from './logs/json-file.js';
import type { RestartPolicy } from './restart-policy.js';
import type { RespawnRecord } from './respawn.js';

/** The default state root for root: `/var/lib/berth`; `BERTH_ROOT` overrides it. */
export function defaultRoot(): string {
  if (process.env.BERTH_ROOT) return process.env.BERTH_ROOT;
  if (process.getuid?.() === 0) return '/var/lib/berth';
  const runtime = process.env.XDG_RUNTIME_DIR;
  return runtime ? join(runtime, 'berth') : join(process.env.HOME ?? '/tmp', '.local/share/berth');
}

/** A process identity that survives pid reuse: pid plus its start time in clock ticks since boot. */
export interface ProcessIdentity {
  pid: number;
  startTime: number;
}

/** What is recorded about a container. */
export interface ContainerState {
  id: string;
  name: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  status: 'created' | 'running' | 'exited';
  /** The Node process that created it; a container dies with it unless detached. */
  owner: ProcessIdentity;
  detached: boolean;
  /** The container's init, host pid namespace. */
  process?: ProcessIdentity;
  exitCode?: number;
  signal?: number;
  oomKilled?: boolean;
  /** The cgroup name under the driver's parent. */
  cgroup: string;
  cgroupVersion: 1 | 2;
  stopSignal: string | number;
  stopTimeout: number;
  labels: Record<string, string>;
  /** Its stdin is a pipe kept open by its owner (Docker's OpenStdin, `-i`). */
  openStdin?: boolean;
  /** For a container made from an image: the reference, the manifest digest, the snapshots it stands on. */
  image?: { reference: string; digest: string; chainIds: string[]; exposedPorts: string[]; volumes: string[] };
  /** The user namespace's maps, when it has one (the range is also recorded in `userns.json` from creation on). */
  userns?: { uidMap: IdMapping[]; gidMap: IdMapping[]; auto: boolean };
  /** Networking: mode, endpoint, published ports (lib/network/container-network.ts). */
  network?: ContainerNetworkRecord;
  /** How its output is logged (absent in records older than logging: nothing was logged). */
  log?: LogConfig;
  /** The `init` option as given (Docker's HostConfig.Init); the spec's args then start with the init. */
  init?: boolean;
  /** Its restart policy (absent: `no`). */
  restartPolicy?: RestartPolicy;
  /** Restarts its policy made since it was last started by hand (Docker's RestartCount). */
  restartCount?: number;
  /** A start of its process is pending or under way (a policy's delay, or a start), by its owner. */
  restarting?: boolean;
  /** Why the last start by its restart policy failed (Docker's State.Error). */
  error?: string;
  /** What starting its process again needs (absent in records older than restarts: they cannot be). */
  respawn?: RespawnRecord;
  /** The OCI runtime spec the container was created from. */
  spec: unknown;
}

/** The start time of a process (field 22 of /proc/<pid>/stat), or undefined if it does not exist. */
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const state = fields[0];
    if (state === 'Z' || state === 'X') return undefined; // a zombie has already exited
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

/** Whether exactly this process (not a later one that reused the pid) is still alive. */
export function isAlive(p: ProcessIdentity | undefined): boolean {
  return p !== undefined && processStartTime(p.pid) === p.startTime;
}

let self: ProcessIdentity | undefined;

/** This process's identity (constant for its lifetime). */
export function selfIdentity(): ProcessIdentity {
  self ??= { pid: process.pid, startTime: processStartTime(process.pid) ?? 0 };
  return { ...self };
}

/** A new container id: 64 hex characters, as Docker's. */
export function newContainerId(): string {
  return randomBytes(32).toString('hex');
}

/** One state root directory. */
export class StateRoot {
  readonly path: string;

  constructor(path: string) {
    this.path = path;
    mkdirSync(this.containersDir, { recursive: true, mode: 0o711 });
    mkdirSync(this.namesDir, { recursive: true, mode: 0o711 });
  }

  get containersDir(): string {
    return join(this.path, 'containers');
  }

  get namesDir(): string {
    return join(this.path, 'names');
  }

  containerDir(id: string): string {
    return join(this.containersDir, id);
  }

  /**
   * Creates the container's directory with an `owner.json` naming the creating process, so that a directory whose
   * creator died before writing state.json can still be recognised and cleaned up. Fails if the id exists.
   */
  createContainerDir(id: string, owner: ProcessIdentity): string {
    const dir = this.containerDir(id);
    mkdirSync(dir, { mode: 0o700 });
    writeFileSync(join(dir, 'owner.json'), JSON.stringify(owner), { mode: 0o600 });
    return dir;
  }

  /** The process that created a container's directory (from owner.json), if readable. */
  readOwner(id: string): ProcessIdentity | undefined {
    try {
      const o = JSON.parse(readFileSync(join(this.containerDir(id), 'owner.json'), 'utf8')) as ProcessIdentity;
      return typeof o.pid === 'number' && typeof o.startTime === 'number' ? o : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Reserves `name` for `id` atomically (a symlink); the container's directory must already exist. A name whose
   * container directory is gone is stale and reclaimed.
   */
  reserveName(name: string, id: string): void {
    const link = join(this.namesDir, name);
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        symlinkSync(id, link);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const holder = this.nameOwner(name);
      if (holder && existsSync(this.containerDir(holder))) throw new NameConflictError(name, holder);
      // Stale: its container is gone. Reclaim it under the names lock, so that between checking where the link
      // points and unlinking it no other process can have replaced it with a fresh one.
      this.#withNamesLock(() => {
        try {
          if (readlinkSync(link) === holder && !existsSync(this.containerDir(holder ?? ''))) unlinkSync(link);
        } catch {
          // already gone
        }
      });
    }
    throw new NameConflictError(name, this.nameOwner(name) ?? 'unknown');
  }

  /** Runs `f` holding an exclusive lock on the names directory (a short critical section; spins briefly). */
  #withNamesLock(f: () => void): void {
    const fd = openSync(join(this.path, 'names.lock'), 'a', 0o600);
    try {
      const deadline = Date.now() + 2000;
      while (!native.flock(fd, true)) {
        if (Date.now() > deadline) throw new BerthError('ERR_LOCK_TIMEOUT', `timed out waiting for ${this.path}/names.lock`);
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
      }
      f();
    } finally {
      closeSync(fd); // releases the lock
    }
  }

  /** Names (in the names directory) that point to `id`. */
  namesOf(id: string): string[] {
    try {
      return readdirSync(this.namesDir).filter((n) => this.nameOwner(n) === id);
    } catch {
      return [];
    }
  }

  /** The id a name points to, if any. */
  nameOwner(name: string): string | undefined {
    try {
      return readlinkSync(join(this.namesDir, name));
    } catch {
      return undefined;
    }
  }

  /** Releases `name` if it still belongs to `id`. */
  releaseName(name: string, id: string): void {
    try {
      if (this.nameOwner(name) === id) unlinkSync(join(this.namesDir, name));
    } catch {
      // already gone
    }
  }

  /** Writes state.json atomically. Does nothing if the container's directory was removed meanwhile. */
  writeState(state: ContainerState): void {
    const dir = this.containerDir(state.id);
    const tmp = join(dir, `.state.${process.pid}.${randomBytes(4).toString('hex')}`);
    try {
      writeFileSync(tmp, stateJson(state), { mode: 0o600 });
      renameSync(tmp, join(dir, 'state.json'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
  }

  /**
   * Writes the state of a container this process owns, keeping the name recorded on disk: another process may
   * have renamed it since the owner read it. Holds the names lock so a rename cannot slip in between.
   */
  writeOwnedState(state: ContainerState): void {
    this.#withNamesLock(() => {
      const name = this.#readName(state.id);
      if (name !== undefined) state.name = name;
      this.writeState(state);
    });
  }

  /**
   * The name in a container's record, without parsing all of it (the spec, with its seccomp profile, is most of
   * the record; the owner asks at every write): records are written with `id` and `name` first.
   */
  #readName(id: string): string | undefined {
    let text: string;
    try {
      text = readFileSync(join(this.containerDir(id), 'state.json'), 'utf8');
    } catch {
      return undefined;
    }
    const head = /^\{"id":"[0-9a-f]{64}","name":("(?:[^"\\]|\\.)*")/.exec(text);
    if (head) return JSON.parse(head[1]!) as string;
    try {
      return (JSON.parse(text) as ContainerState).name;
    } catch {
      return undefined;
    }
  }

  /**
   * Renames a container (`docker rename`): the new name is reserved first (so two renames to one name cannot
   * both win), the record changed under the names lock, then the old name released. Returns the old name.
   */
  renameContainer(id: string, newName: string): string {
    this.reserveName(newName, id);
    let old: string | undefined;
    try {
      this.#withNamesLock(() => {
        const state = this.readState(id);
        if (!state) throw new ContainerNotFoundError(id);
        old = state.name;
        this.writeState({ ...state, name: newName });
      });
    } catch (e) {
      this.releaseName(newName, id);
      throw e;
    }
    this.releaseName(old!, id);
    return old!;
  }

  /** Reads a container's state, or undefined when it does not exist (or is half-created). */
  readState(id: string): ContainerState | undefined {
    if (!/^[0-9a-f]{64}$/.test(id)) return undefined;
    try {
      return JSON.parse(readFileSync(join(this.containerDir(id), 'state.json'), 'utf8')) as ContainerState;
    } catch {
      return undefined;
    }
  }

  /** Every container id with a readable state. */
  listIds(): string[] {
    try {
      return readdirSync(this.containersDir).filter((d) => /^[0-9a-f]{64}$/.test(d));
    } catch {
      return [];
    }
  }

  /** Finds a container by full id, unique id prefix, or name. */
  resolve(idOrName: string): string | undefined {
    if (/^[0-9a-f]{64}$/.test(idOrName) && this.readState(idOrName)) return idOrName;
    const byName = this.nameOwner(idOrName);
    if (byName && this.readState(byName)) return byName;
    if (/^[0-9a-f]{3,63}$/.test(idOrName)) {
      const matches = this.listIds().filter((id) => id.startsWith(idOrName));
      if (matches.length === 1) return matches[0];
    }
    return undefined;
  }

  /**
   * Removes a container's record. The directory is first renamed aside, so that when two processes clean up the
   * same container only one of them does the work.
   */
  removeContainerDir(id: string): boolean {
    const dir = this.containerDir(id);
    const trash = join(this.containersDir, `.removing-${id}-${randomBytes(4).toString('hex')}`);
    try {
      renameSync(dir, trash);
    } catch {
      return false;
    }
    rmSync(trash, { recursive: true, force: true });
    return true;
  }
}
