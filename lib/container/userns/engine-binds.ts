/**
 * Bind mounts of files the engine writes for a container with a user namespace (/etc/hosts, /etc/hostname,
 * /etc/resolv.conf, in the container's directory). The init mounts after it became the namespace's root, which
 * cannot reach the state root by path (its directories are not searchable by others). So the parent makes each
 * one an idmapped detached mount (the host root's files show as the container's root, as with Docker's
 * userns-remap) and the init attaches it as it is. The files stay the same inodes: rewriting them in place (the
 * network's hosts files) still shows inside.
 * @module
 */
import { closeSync } from 'node:fs';
import { RootfsError } from '../../errors.js';
import { native, type NativePlan } from '../../native.js';
import { idMapText, type IdMaps } from './idmap.js';

/**
 * Gives the plan's bind mounts of `sources` a detached idmapped mount each. Returns a function closing the
 * parent's copies (call it after spawning: the init holds its own).
 */
export function detachEngineBinds(plan: NativePlan, sources: readonly string[], maps: IdMaps): () => void {
  const binds = (plan.mounts ?? []).filter((m) => m.kind === 'bind' && sources.includes(m.source));
  const fds: number[] = [];
  const closeAll = () => {
    for (const fd of fds.splice(0)) {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
    }
  };
  if (!binds.length) return closeAll;
  let nsFd = -1;
  try {
    nsFd = native.usernsFd(idMapText(maps.uidMap), idMapText(maps.gidMap));
    for (const m of binds) {
      const fd = native.idmapTree(m.source, nsFd, false);
      fds.push(fd);
      m.treeFd = fd;
    }
  } catch (e) {
    closeAll();
    throw new RootfsError(`cannot prepare the container's ${binds.map((m) => m.target).join(', ')} for its user namespace: ${(e as Error).message}`);
  } finally {
    if (nsFd >= 0) closeSync(nsFd);
  }
  return closeAll;
}
