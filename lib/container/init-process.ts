/**
 * Docker's `--init` (the `init` option): a small init runs as the container's PID 1 and the program as its child.
 * The init (berth-docker-init, built from addon/docker-init.cc next to the addon) forwards the signals it gets to
 * the program, reaps orphaned zombies and exits with the program's status. As Docker does, it is bind-mounted
 * read-only at /sbin/docker-init and the spec's args become `/sbin/docker-init -- <program> <args...>`; the
 * container's recorded command (`inspect`'s Path and Args, `ps`) stays the program's.
 * @module
 */
import { accessSync, closeSync, constants as fsConstants } from 'node:fs';
import { UnsupportedError } from '../errors.js';
import { builtExecutable, native, type NativePlan } from '../native.js';
import type { ValidContainerOptions } from './options.js';
import type { OciSpec } from './spec.js';

/** Where the init is mounted inside the container (Docker's path). */
export const IN_CONTAINER_INIT_PATH = '/sbin/docker-init';

/** The host path of the init binary; throws `UnsupportedError` when this build of berth lacks it. */
export function initBinaryPath(): string {
  const path = builtExecutable('berth-docker-init');
  try {
    accessSync(path, fsConstants.X_OK);
  } catch {
    // node-gyp-build keeps an existing addon build, so a checkout updated since its last build has none.
    throw new UnsupportedError(`the init binary for the init option is not built (${path}): rebuild berth with "npm run build:addon"`);
  }
  return path;
}

/**
 * Whether a container gets the init: asked for, and in a pid namespace of its own. As with Docker, a container in
 * the host's (or another container's) pid namespace runs without one: PID 1 there is somebody else.
 */
export function wantsInit(o: Pick<ValidContainerOptions, 'init' | 'namespaces'>): boolean {
  const pid = o.namespaces?.pid;
  return o.init === true && (pid === undefined || pid === 'private');
}

/** Puts the init in front of the spec's program and mounts it read-only at {@link IN_CONTAINER_INIT_PATH}. */
export function applyInit(spec: OciSpec, binary: string = initBinaryPath()): void {
  spec.process.args = [IN_CONTAINER_INIT_PATH, '--', ...spec.process.args];
  // Last, so that no user mount (a bind or tmpfs on /sbin) hides it; the executor creates the file it mounts on.
  spec.mounts = [
    ...(spec.mounts ?? []),
    { destination: IN_CONTAINER_INIT_PATH, type: 'bind', source: binary, options: ['bind', 'ro', 'nosuid', 'nodev'] },
  ];
}

/** The program a container runs, without the init in front of it (what `inspect` shows as Path and Args). */
export function programArgs(spec: OciSpec, init: boolean | undefined): string[] {
  const args = spec.process.args;
  return init && args[0] === IN_CONTAINER_INIT_PATH && args[1] === '--' ? args.slice(2) : args;
}

/**
 * With a user namespace the container's init mounts as the namespace's root, which may not be allowed to reach the
 * binary by path (a home directory, a node_modules tree). The parent makes the bind instead: read-only and not
 * idmapped, so the file stays owned by an id the container does not map and its root can never write to it, even
 * by remounting it. Returns a function closing the parent's copy (call it after spawning).
 */
export function detachInitBinary(plan: NativePlan, binary: string): () => void {
  const mount = (plan.mounts ?? []).find((m) => m.kind === 'bind' && m.target === IN_CONTAINER_INIT_PATH && m.source === binary);
  if (!mount) return () => undefined;
  const fd = native.readonlyTree(binary);
  mount.treeFd = fd;
  return () => closeSync(fd);
}
