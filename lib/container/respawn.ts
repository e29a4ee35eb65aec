/**
 * Starting an exited container's process again (`docker start` of an exited container, `docker restart`, restart
 * policies): what its record keeps for that, and the pieces of a new run that differ from the first one.
 *
 * A container keeps its id, name, directory, spec, writable layer (the overlay's upper directory), log, labels and
 * user namespace range; each run gets a new process, a new cgroup (same path: the old one is destroyed first, so
 * counters such as the OOM kill count start again), new output pipes or a new terminal, and its network set up
 * again: the same address when it is still free (else the next free one), ports published again (a port chosen
 * by the kernel may differ), the hosts files rewritten, and a `container:<x>` network joined again in x's current
 * namespace.
 * @module
 */
import { existsSync } from 'node:fs';
import { ContainerStateError, RootfsError } from '../errors.js';
import { SnapshotStore } from '../image/snapshot.js';
import { logWriterDone } from './logs/json-file.js';
import type { StdioOption, ValidContainerOptions } from './options.js';
import type { OciSpec } from './spec.js';
import type { ProcessIdentity } from './state.js';

/** What a container's state keeps so that its process can be started again. */
export interface RespawnRecord {
  /**
   * The options it was created with, as validated (before the image's config was merged in: that is in the spec),
   * without `seccomp` (the filter it resolved to is in the spec).
   */
  options: Omit<ValidContainerOptions, 'seccomp'>;
  /** Made from a raw OCI spec (`createFromSpec`): its spec and root are used as they are. */
  rawSpec: boolean;
  /** How many mounts at the end of the spec are its network files (/etc/hosts...), made again by each start. */
  networkMounts: number;
  /** The process that created it: stdio given as `'inherit'` or an fd number means something only there. */
  creator: ProcessIdentity;
}

/** The record for a container being created. */
export function respawnRecord(o: ValidContainerOptions, rawSpec: boolean, creator: ProcessIdentity): RespawnRecord {
  const { seccomp: _seccomp, ...options } = o;
  return { options, rawSpec, networkMounts: 0, creator };
}

/** The record, or a clear refusal for containers recorded before berth could start a process again. */
export function requireRespawn(state: { name: string; respawn?: RespawnRecord }): RespawnRecord {
  if (!state.respawn) {
    throw new ContainerStateError(
      `container ${state.name} was created by an older berth that did not record its options: it cannot be started again; remove it and create a new one`,
    );
  }
  return state.respawn;
}

/**
 * The spec of a new run: the recorded one without the network files' mounts (the new run's network adds them
 * again), and with a `container:<x>` network namespace's path replaced by `netnsPath` (x's current process).
 */
export function respawnSpec(spec: OciSpec, record: RespawnRecord, netnsPath: string | undefined): OciSpec {
  const mounts = spec.mounts ?? [];
  const out: OciSpec = { ...spec, process: { ...spec.process }, mounts: mounts.slice(0, mounts.length - record.networkMounts) };
  if (netnsPath !== undefined && spec.linux?.namespaces) {
    out.linux = {
      ...spec.linux,
      namespaces: spec.linux.namespaces.map((n) => (n.type === 'network' ? { ...n, path: netnsPath } : n)),
    };
  }
  return out;
}

/**
 * A stream option for a new run: `'inherit'` and fd numbers name this process's streams and fds only when this
 * process created the container; in another one they become `'ignore'` (the output is then logged, not lost).
 */
export function respawnStdio(opt: StdioOption | undefined, sameProcess: boolean): StdioOption | undefined {
  if (sameProcess || opt === undefined || opt === 'pipe' || opt === 'ignore') return opt;
  return 'ignore';
}

/** The snapshot directories of an image container's layers (top-most first); throws when one is gone. */
export function snapshotLowers(root: string, chainIds: readonly string[], reference: string): string[] {
  const store = new SnapshotStore(root);
  const dirs = chainIds.map((c) => store.path(c));
  const missing = dirs.find((d) => !existsSync(d));
  if (missing) throw new RootfsError(`a layer of image ${reference} is gone (${missing}): the container cannot be started again`);
  return dirs.reverse();
}

/**
 * Waits (at most `timeoutMs`) until the previous run's log writer (the owner's, or a detached container's log
 * monitor) let go of the log, so that the new run's output is appended after all of the previous run's.
 */
export async function previousLogWriterDone(containerDir: string, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!logWriterDone(containerDir) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

/** Whether two process identities are the same process. */
export function sameProcess(a: ProcessIdentity | undefined, b: ProcessIdentity | undefined): boolean {
  return a !== undefined && b !== undefined && a.pid === b.pid && a.startTime === b.startTime;
}
