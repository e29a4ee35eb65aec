/**
 * The OCI runtime spec is berth's internal contract (DESIGN decision 1): user options become a spec, the spec
 * becomes the executor's plan. Users may also pass a raw spec (`Container.createFromSpec`). This module holds the
 * spec's schema (the subset berth implements) and the options → spec conversion with Docker's defaults.
 * @module
 */
import { z } from 'zod';
import { toInvalidOptions, type ValidContainerOptions } from './options.js';
import { CAPABILITY_NAMES, combineCapabilities, DOCKER_DEFAULT_CAPABILITIES, normalizeCapability } from './capabilities.js';
import { applyPrivileged, checkGrantable, deviceMappings, hostCapabilities, parseDeviceCgroupRules } from './privileges.js';
import {
  DEFAULT_DEVICES,
  DEFAULT_MASKED_PATHS,
  DEFAULT_MOUNTS,
  DEFAULT_PATH,
  DEFAULT_READONLY_PATHS,
} from './defaults.js';
import type { LinuxResources } from './cgroup/driver.js';
import { DOCKER_DEFAULT_DEVICE_RULES } from './cgroup/devices.js';
import type { ResolvedUser } from './user.js';
import { idMapSchema, type IdMaps } from './userns/idmap.js';
import { ociSeccompSchema } from './seccomp/profile.js';
import { seccompForOptions } from './seccomp/resolve.js';
import { applyInit, wantsInit } from './init-process.js';

const absolutePath = z.string().refine((p) => p.startsWith('/'), 'must be an absolute path');
const capList = z.array(z.enum(CAPABILITY_NAMES));
const uint32 = z.number().int().min(0).max(0xffffffff);

const rlimitTypes = [
  'RLIMIT_AS', 'RLIMIT_CORE', 'RLIMIT_CPU', 'RLIMIT_DATA', 'RLIMIT_FSIZE', 'RLIMIT_LOCKS', 'RLIMIT_MEMLOCK',
  'RLIMIT_MSGQUEUE', 'RLIMIT_NICE', 'RLIMIT_NOFILE', 'RLIMIT_NPROC', 'RLIMIT_RSS', 'RLIMIT_RTPRIO',
  'RLIMIT_RTTIME', 'RLIMIT_SIGPENDING', 'RLIMIT_STACK',
] as const;

/** The namespace types of the OCI spec that berth supports (the time namespace comes later). */
export const NAMESPACE_TYPES = ['pid', 'network', 'mount', 'ipc', 'uts', 'cgroup', 'user'] as const;

/** The OCI runtime spec (config.json), restricted to what berth implements; unknown fields are kept and ignored. */
export const ociSpecSchema = z.looseObject({
  ociVersion: z.string(),
  process: z.looseObject({
    terminal: z.boolean().optional(),
    consoleSize: z.looseObject({ height: uint32, width: uint32 }).optional(),
    user: z.looseObject({
      uid: uint32,
      gid: uint32,
      umask: z.number().int().min(0).max(0o777).optional(),
      additionalGids: z.array(uint32).optional(),
    }),
    args: z.array(z.string()).min(1, 'process.args must name the program to run'),
    env: z.array(z.string()).optional(),
    cwd: absolutePath,
    capabilities: z
      .looseObject({
        bounding: capList.optional(),
        effective: capList.optional(),
        inheritable: capList.optional(),
        permitted: capList.optional(),
        ambient: capList.optional(),
      })
      .optional(),
    rlimits: z
      .array(z.looseObject({ type: z.enum(rlimitTypes), hard: z.number().int().min(0), soft: z.number().int().min(0) }))
      .optional(),
    noNewPrivileges: z.boolean().optional(),
  }),
  root: z.looseObject({ path: z.string().min(1), readonly: z.boolean().optional() }),
  hostname: z.string().optional(),
  domainname: z.string().optional(),
  mounts: z
    .array(
      z.looseObject({
        destination: absolutePath,
        type: z.string().optional(),
        source: z.string().optional(),
        options: z.array(z.string()).optional(),
      }),
    )
    .optional(),
  linux: z
    .looseObject({
      namespaces: z
        .array(z.looseObject({ type: z.enum(NAMESPACE_TYPES), path: absolutePath.optional() }))
        .optional(),
      resources: z
        .looseObject({
          memory: z
            .looseObject({ limit: z.number().int().optional(), swap: z.number().int().optional(), reservation: z.number().int().optional() })
            .optional(),
          cpu: z
            .looseObject({
              shares: z.number().int().optional(),
              quota: z.number().int().optional(),
              period: z.number().int().optional(),
              cpus: z.string().optional(),
              mems: z.string().optional(),
            })
            .optional(),
          pids: z.looseObject({ limit: z.number().int().optional() }).optional(),
          devices: z
            .array(
              z.looseObject({
                allow: z.boolean(),
                type: z.enum(['a', 'c', 'b']).optional(),
                major: z.number().int().min(0).nullish(),
                minor: z.number().int().min(0).nullish(),
                access: z.string().regex(/^[rwm]{1,3}$/, 'must combine r, w and m').optional(),
              }),
            )
            .optional(),
        })
        .optional(),
      cgroupsPath: z.string().optional(),
      devices: z
        .array(
          z.looseObject({
            path: absolutePath,
            type: z.enum(['c', 'b', 'u', 'p']),
            major: z.number().int().min(0),
            minor: z.number().int().min(0),
            fileMode: z.number().int().min(0).max(0o7777).optional(),
            uid: uint32.optional(),
            gid: uint32.optional(),
          }),
        )
        .optional(),
      maskedPaths: z.array(absolutePath).optional(),
      readonlyPaths: z.array(absolutePath).optional(),
      rootfsPropagation: z.enum(['private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave', 'unbindable', 'runbindable']).optional(),
      sysctl: z.record(z.string(), z.string()).optional(),
      seccomp: ociSeccompSchema.optional(),
      uidMappings: idMapSchema.optional(),
      gidMappings: idMapSchema.optional(),
    })
    .optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

/** A validated OCI runtime spec. */
export type OciSpec = z.output<typeof ociSpecSchema>;

/** Validates a raw OCI runtime spec; throws `InvalidOptionsError` naming each bad field. */
export function parseOciSpec(input: unknown): OciSpec {
  const result = ociSpecSchema.safeParse(input);
  if (!result.success) throw toInvalidOptions('OCI runtime spec', result.error);
  return result.data;
}

/** Facts the conversion needs that are not in the options. */
export interface SpecContext {
  /** The container id (the default hostname is its first 12 characters, as Docker's). */
  id: string;
  /** The user the process runs as, resolved from the rootfs' /etc/passwd and /etc/group. */
  user: ResolvedUser;
  /** The host directory that becomes the container's "/" (the rootfs, or the mount point of an image's overlay). */
  rootPath: string;
  /** The maps of the container's user namespace (resolved from `userns`), when it has one. */
  userns?: IdMaps;
  /** Host path of the init binary for the `init` option (default: the one built next to the addon). */
  initBinary?: string;
}

/** Docker's --cpus → CFS quota/period, --memory-swap default, --pids-limit semantics → OCI resources. */
export function resourcesFromOptions(r: ValidContainerOptions['resources']): LinuxResources | undefined {
  if (!r) return undefined;
  const out: LinuxResources = {};
  if (r.memory !== undefined || r.memoryReservation !== undefined || r.memorySwap !== undefined) {
    out.memory = {};
    if (r.memory !== undefined) {
      out.memory.limit = r.memory;
      // Docker: without --memory-swap, the container may use as much swap as memory (total = 2 × memory).
      out.memory.swap = r.memorySwap ?? r.memory * 2;
    } else if (r.memorySwap !== undefined) out.memory.swap = r.memorySwap;
    if (r.memoryReservation !== undefined) out.memory.reservation = r.memoryReservation;
  }
  if (
    r.cpus !== undefined ||
    r.cpuShares !== undefined ||
    r.cpuQuota !== undefined ||
    r.cpuPeriod !== undefined ||
    r.cpusetCpus !== undefined ||
    r.cpusetMems !== undefined
  ) {
    out.cpu = {};
    if (r.cpus !== undefined) {
      out.cpu.period = 100_000;
      out.cpu.quota = Math.round(r.cpus * 100_000);
    }
    if (r.cpuQuota !== undefined) out.cpu.quota = r.cpuQuota;
    if (r.cpuPeriod !== undefined) out.cpu.period = r.cpuPeriod;
    if (r.cpuShares !== undefined) out.cpu.shares = r.cpuShares;
    if (r.cpusetCpus !== undefined) out.cpu.cpus = r.cpusetCpus;
    if (r.cpusetMems !== undefined) out.cpu.mems = r.cpusetMems;
  }
  if (r.pidsLimit !== undefined) out.pids = { limit: r.pidsLimit <= 0 ? -1 : r.pidsLimit };
  return out;
}

/** The environment as Docker builds it: PATH first (its default unless given), HOSTNAME, then the user's, HOME. */
function envList(env: ValidContainerOptions['env'], home: string, hostname: string | undefined, tty: boolean): string[] {
  const list = Array.isArray(env) ? [...env] : Object.entries(env ?? {}).map(([k, v]) => `${k}=${v}`);
  const has = (key: string) => list.some((e) => e.startsWith(`${key}=`));
  const head: string[] = [];
  if (!has('PATH')) head.push(`PATH=${DEFAULT_PATH}`);
  if (hostname !== undefined && !has('HOSTNAME')) head.push(`HOSTNAME=${hostname}`);
  if (tty && !has('TERM')) head.push('TERM=xterm');
  list.unshift(...head);
  if (!has('HOME')) list.push(`HOME=${home}`);
  return list;
}

function mountsFromOptions(o: ValidContainerOptions): NonNullable<OciSpec['mounts']> {
  const user = (o.mounts ?? []).map((m) => {
    if (m.type === 'bind') {
      const options = [m.recursive === false ? 'bind' : 'rbind', m.readonly ? 'ro' : 'rw'];
      if (m.propagation) options.push(m.propagation);
      return { destination: m.target, type: 'bind', source: m.source, options };
    }
    // Docker's tmpfs defaults, unless the caller asks for the opposite (suid, dev, exec).
    const extra = m.options ?? [];
    const defaults = ['nosuid', 'nodev', 'noexec'].filter((d) => !extra.includes(d.slice(2)));
    const options = [...defaults, ...extra];
    if (m.size !== undefined) options.push(`size=${m.size}`);
    if (m.mode !== undefined) options.push(`mode=${m.mode.toString(8)}`);
    if (m.readonly) options.push('ro');
    return { destination: m.target, type: 'tmpfs', source: 'tmpfs', options };
  });
  // A user mount replaces a default one at the same place (as Docker lets -v /dev/shm or --tmpfs /dev/shm).
  const taken = new Set(user.map((m) => m.destination.replace(/\/+$/, '') || '/'));
  const defaults = DEFAULT_MOUNTS.filter((m) => !taken.has(m.destination)).map((m) => ({
    ...m,
    options: [...(m.options ?? [])],
  }));
  return [...defaults, ...user];
}

function namespacesFromOptions(o: ValidContainerOptions): NonNullable<NonNullable<OciSpec['linux']>['namespaces']> {
  const ns: { type: (typeof NAMESPACE_TYPES)[number]; path?: string }[] = [{ type: 'mount' }];
  const pick = (type: (typeof NAMESPACE_TYPES)[number], mode: 'private' | 'host' | 'none' | { path: string } | undefined) => {
    if (mode === 'host') return;
    if (mode && typeof mode === 'object') ns.push({ type, path: mode.path });
    else ns.push({ type });
  };
  pick('pid', o.namespaces?.pid);
  pick('ipc', o.namespaces?.ipc);
  pick('uts', o.namespaces?.uts);
  pick('network', o.namespaces?.network);
  pick('cgroup', o.namespaces?.cgroup);
  return ns;
}

const RLIMIT_BY_NAME: Record<string, (typeof rlimitTypes)[number]> = Object.fromEntries(
  rlimitTypes.map((t) => [t.slice('RLIMIT_'.length).toLowerCase(), t]),
);

/** Converts validated options to an OCI runtime spec with Docker's defaults filled in. */
export function specFromOptions(o: ValidContainerOptions, ctx: SpecContext): OciSpec {
  // A container never holds more than its owner's bounding set: defaults and ALL are limited to it, and an
  // explicit capAdd the host cannot grant is refused by name (rather than failing at start with EPERM).
  const host = hostCapabilities();
  checkGrantable((o.capAdd ?? []).map((c) => normalizeCapability(c)).filter((c) => c !== undefined));
  const caps = combineCapabilities(DOCKER_DEFAULT_CAPABILITIES.filter((c) => host.includes(c)), o.capAdd ?? [], o.capDrop ?? [], host);
  const ownUts = o.namespaces?.uts === undefined || o.namespaces.uts === 'private';
  const hostname = ownUts ? (o.hostname ?? ctx.id.slice(0, 12)) : undefined;
  const spec: OciSpec = {
    ociVersion: '1.2.0',
    process: {
      ...(o.tty ? { terminal: true, consoleSize: { height: o.consoleSize?.rows ?? 24, width: o.consoleSize?.columns ?? 80 } } : {}),
      user: { uid: ctx.user.uid, gid: ctx.user.gid, additionalGids: ctx.user.additionalGids },
      args: [...(o.entrypoint ?? []), ...(o.cmd ?? [])],
      env: envList(o.env, ctx.user.home, hostname, o.tty ?? false),
      cwd: o.workdir ?? '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] },
      rlimits: (o.ulimits ?? []).map((u) => ({
        type: RLIMIT_BY_NAME[u.name]!,
        soft: u.soft === -1 ? Number.MAX_SAFE_INTEGER : u.soft,
        hard: u.hard === -1 ? Number.MAX_SAFE_INTEGER : u.hard,
      })),
      noNewPrivileges: o.noNewPrivileges ?? false,
    },
    root: { path: ctx.rootPath, readonly: o.readonlyRootfs ?? false },
    mounts: mountsFromOptions(o),
    linux: {
      namespaces: namespacesFromOptions(o),
      devices: DEFAULT_DEVICES.map((d) => ({ ...d })),
      maskedPaths: [...DEFAULT_MASKED_PATHS],
      readonlyPaths: [...DEFAULT_READONLY_PATHS],
      rootfsPropagation: 'rprivate',
    },
    annotations: { ...(o.labels ?? {}) },
  };
  if (hostname !== undefined) spec.hostname = hostname;
  if (ownUts && o.domainname) spec.domainname = o.domainname;
  spec.linux!.resources = { ...resourcesFromOptions(o.resources), devices: DOCKER_DEFAULT_DEVICE_RULES.map((r) => ({ ...r })) };
  if (o.sysctls) spec.linux!.sysctl = { ...o.sysctls };
  applyPrivilegeOptions(spec, o);
  if (ctx.userns) {
    spec.linux!.namespaces!.push({ type: 'user' });
    spec.linux!.uidMappings = ctx.userns.uidMap.map((m) => ({ ...m }));
    spec.linux!.gidMappings = ctx.userns.gidMap.map((m) => ({ ...m }));
  }
  // Docker runs privileged containers without a syscall filter; otherwise the profile's capability conditions
  // are decided from the final capability set.
  if (!o.privileged) {
    const seccomp = seccompForOptions(o.seccomp, caps);
    if (seccomp) spec.linux!.seccomp = seccomp;
  }
  if (wantsInit(o)) applyInit(spec, ctx.initBinary);
  return spec;
}

/** `privileged`, `devices`, `deviceCgroupRules`, `maskedPaths`, `readonlyPaths` on top of the defaults. */
function applyPrivilegeOptions(spec: OciSpec, o: ValidContainerOptions): void {
  const linux = spec.linux!;
  if (o.privileged) applyPrivileged(spec);
  if (o.devices?.length) {
    const { devices, rules } = deviceMappings(o.devices);
    const paths = new Set(devices.map((d) => d.path));
    linux.devices = [...(linux.devices ?? []).filter((d) => !paths.has(d.path)), ...devices.map((d) => ({ ...d }))];
    linux.resources = { ...linux.resources, devices: [...(linux.resources?.devices ?? []), ...rules.map((r) => ({ ...r }))] };
  }
  if (o.deviceCgroupRules?.length) {
    linux.resources = {
      ...linux.resources,
      devices: [...(linux.resources?.devices ?? []), ...parseDeviceCgroupRules(o.deviceCgroupRules).map((r) => ({ ...r }))],
    };
  }
  if (o.maskedPaths) linux.maskedPaths = [...o.maskedPaths];
  if (o.readonlyPaths) linux.readonlyPaths = [...o.readonlyPaths];
}
