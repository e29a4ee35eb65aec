/**
 * What a user namespace changes in the executor's plan (called by `planFromSpec`). The namespace is created by
 * clone3 together with the others, so every one of them belongs to it and the container's capabilities apply
 * to them; spawn writes the maps computed here before the init needs any privilege.
 *
 * Inside a user namespace the kernel refuses mknod of devices, so device nodes are bind mounts of the host's
 * own nodes (as runc and crun do), checked here to be the device the spec names.
 * @module
 */
import { statSync } from 'node:fs';
import { InvalidOptionsError } from '../../errors.js';
import type { NativeMount, NativePlan } from '../../native.js';
import type { OciSpec } from '../spec.js';
import { idMapSchema, idMapText, isMapped, type IdMapping } from './idmap.js';

const CLONE_NEWIPC = 0x08000000n;
const ATTR_NOSUID = 2n;
const ATTR_NOEXEC = 8n;

/** Filesystems that need a namespace of their own owned by the user namespace to be mounted in it. */
const NEEDS_OWN_NAMESPACE: Record<string, { type: string; why: string }> = {
  proc: { type: 'pid', why: 'proc shows a pid namespace' },
  sysfs: { type: 'network', why: 'sysfs shows a network namespace' },
  mqueue: { type: 'ipc', why: 'mqueue belongs to an ipc namespace' },
  cgroup: { type: 'cgroup', why: 'cgroup filesystems are mounted through a cgroup namespace' },
  cgroup2: { type: 'cgroup', why: 'cgroup filesystems are mounted through a cgroup namespace' },
};

/** The user namespace of a spec, validated: undefined when it has none. Throws `InvalidOptionsError`. */
export function specUserns(spec: OciSpec): { uidMap: IdMapping[]; gidMap: IdMapping[] } | undefined {
  const linux = spec.linux ?? {};
  const entry = (linux.namespaces ?? []).find((n) => n.type === 'user');
  const fail = (path: string, message: string): never => {
    throw new InvalidOptionsError('OCI runtime spec', [{ path, message }]);
  };
  const uidMap = linux.uidMappings as IdMapping[] | undefined;
  const gidMap = linux.gidMappings as IdMapping[] | undefined;
  if (!entry) {
    if (uidMap?.length || gidMap?.length) fail('linux.uidMappings', 'id mappings need a user namespace (a linux.namespaces entry of type "user")');
    return undefined;
  }
  if (entry.path) fail('linux.namespaces', 'joining an existing user namespace is not supported: give uidMappings and gidMappings for a new one');
  if (!uidMap?.length) fail('linux.uidMappings', 'a new user namespace needs uidMappings');
  if (!gidMap?.length) fail('linux.gidMappings', 'a new user namespace needs gidMappings');
  for (const [key, map] of [['uidMappings', uidMap], ['gidMappings', gidMap]] as const) {
    const r = idMapSchema.safeParse(map);
    if (!r.success) {
      throw new InvalidOptionsError('OCI runtime spec', r.error.issues.map((i) => ({
        path: ['linux', key, ...i.path.map(String)].join('.'), message: i.message,
      })));
    }
  }
  return { uidMap: uidMap!, gidMap: gidMap! };
}

/** The host's device node for a spec device (bound in, as it cannot be created), checked to be that device. */
function hostDevice(d: NonNullable<NonNullable<OciSpec['linux']>['devices']>[number]): string {
  let st;
  try {
    st = statSync(d.path, { bigint: true });
  } catch {
    throw new InvalidOptionsError('devices', [{
      path: d.path,
      message: 'in a user namespace device nodes are bind-mounted from the host (mknod is not allowed there), and the host has no such node',
    }]);
  }
  const kindOk = d.type === 'b' ? st.isBlockDevice() : st.isCharacterDevice();
  // glibc's major()/minor() of a 64-bit dev_t.
  const major = Number(((st.rdev >> 8n) & 0xfffn) | ((st.rdev >> 32n) & ~0xfffn));
  const minor = Number((st.rdev & 0xffn) | ((st.rdev >> 12n) & 0xffffff00n));
  if (!kindOk || major !== d.major || minor !== d.minor) {
    throw new InvalidOptionsError('devices', [{
      path: d.path,
      message: `in a user namespace device nodes are bind-mounted from the host, and the host's ${d.path} is not ${d.type} ${d.major}:${d.minor}`,
    }]);
  }
  return d.path;
}

/**
 * Adds the user namespace of `spec` (if any) to `plan`: the map texts, device binds instead of mknod, and the
 * checks that make failures clear before anything runs (unmapped user or groups, namespaces it cannot join).
 */
export function applyUserNamespace(plan: NativePlan, spec: OciSpec): void {
  const maps = specUserns(spec);
  if (!maps) return;
  const fail = (path: string, message: string): never => {
    throw new InvalidOptionsError('OCI runtime spec', [{ path, message }]);
  };
  const namespaces = spec.linux?.namespaces ?? [];
  for (const n of namespaces) {
    if (n.path && n.type !== 'user') {
      fail('linux.namespaces', `joining an existing ${n.type} namespace (${n.path}) is not supported with a new user namespace: the container's root has no privilege over it`);
    }
  }
  const own = new Set(namespaces.filter((n) => !n.path).map((n) => n.type));
  for (const m of spec.mounts ?? []) {
    const need = m.type ? NEEDS_OWN_NAMESPACE[m.type] : undefined;
    if (need && !own.has(need.type as never)) {
      fail('linux.namespaces', `mounting ${m.type} on ${m.destination} in a user namespace needs a new ${need.type} namespace too (${need.why})`);
    }
  }

  const user = spec.process.user;
  const unmappedGids = [user.gid, ...(user.additionalGids ?? [])].filter((g) => !isMapped(maps.gidMap, g));
  if (!isMapped(maps.uidMap, user.uid)) fail('process.user.uid', `uid ${user.uid} is not mapped by the user namespace's uidMap`);
  if (unmappedGids.length) fail('process.user', `gid ${unmappedGids.join(', ')} not mapped by the user namespace's gidMap`);

  // Root writes the maps, so setgroups stays allowed: the init must drop the host's supplementary groups.
  plan.userns = { uidMap: idMapText(maps.uidMap), gidMap: idMapText(maps.gidMap), setgroups: 'allow' };
  // The kernel makes an ipc namespace's mqueue root as whoever creates the namespace: created by clone3, that
  // is the host's root (nobody inside); unshared by the init once it is the namespace's root, it is root's.
  if (plan.cloneFlags & CLONE_NEWIPC) {
    plan.cloneFlags &= ~CLONE_NEWIPC;
    plan.unshareFlags = (plan.unshareFlags ?? 0n) | CLONE_NEWIPC;
  }

  // devpts' gid= must name a mapped group; without one, new ptys get the opener's group (as runc does).
  for (const m of plan.mounts ?? []) {
    if (m.fstype !== 'devpts' || !m.options) continue;
    m.options = m.options.filter((o) => o.key !== 'gid' || isMapped(maps.gidMap, Number(o.value)));
  }

  const binds: NativeMount[] = [];
  const nodes: NonNullable<NativePlan['devices']> = [];
  const specDevices = spec.linux?.devices ?? [];
  (plan.devices ?? []).forEach((d, i) => {
    const sd = specDevices[i]!;
    if (sd.type === 'p') {
      if (!isMapped(maps.uidMap, d.uid) || !isMapped(maps.gidMap, d.gid)) {
        fail(`linux.devices.${i}`, `owner ${d.uid}:${d.gid} of ${d.path} is not mapped by the user namespace`);
      }
      nodes.push(d); // a FIFO can be made in a user namespace
      return;
    }
    binds.push({
      kind: 'bind', source: hostDevice(sd), target: d.path, targetIsFile: true, attrSet: ATTR_NOSUID | ATTR_NOEXEC,
    });
  });
  plan.devices = nodes;
  plan.mounts = [...(plan.mounts ?? []), ...binds];
}
