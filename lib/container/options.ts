/**
 * The options a user passes to `Container.create()`, validated with zod. Everything that enters from a caller is
 * checked here, so the rest of the library can trust its input. Names follow Docker's run flags.
 * @module
 */
import { z } from 'zod';
import { InvalidOptionsError } from '../errors.js';
import { normalizeCapability } from './capabilities.js';
import { usernsOptionSchema, type UsernsOption } from './userns/idmap.js';
import { containerNetworkFields, type NetworkAttachment, type PortOption } from '../network/options.js';
import { seccompOptionSchema, type SeccompOption } from './seccomp/profile.js';
import { restartPolicySchema, type RestartPolicy } from './restart-policy.js';

const absolutePath = z
  .string()
  .min(1)
  .refine((p) => p.startsWith('/'), 'must be an absolute path')
  .refine((p) => !p.includes('\0'), 'must not contain NUL bytes');

/** A byte size as a number of bytes or a Docker-style string: `512m`, `1g`, `65536k`, `100b`. */
export const byteSize = z.union([
  z.number().int().nonnegative(),
  z
    .string()
    .regex(/^\s*\d+(\.\d+)?\s*([bkmgt]i?b?)?\s*$/i, 'must be a size like 512m, 1g or a number of bytes')
    .transform(parseByteSize),
]);

/** Parses Docker's size syntax (units are powers of 1024, as `docker run --memory`). */
export function parseByteSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([bkmgt])?/i.exec(text);
  if (!m) throw new InvalidOptionsError('size', [{ path: '', message: `cannot parse size "${text}"` }]);
  const units: Record<string, number> = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
  return Math.floor(Number(m[1]) * (units[(m[2] ?? 'b').toLowerCase()] ?? 1));
}

const capabilityName = z
  .string()
  .refine((c) => c.trim().toUpperCase() === 'ALL' || normalizeCapability(c) !== undefined, {
    message: 'unknown capability (expected a name like NET_ADMIN or CAP_NET_ADMIN, or ALL)',
  });

const signalName = z.union([
  z.number().int().min(1).max(64),
  z.string().regex(/^(SIG)?[A-Z0-9+-]+$/i, 'must be a signal name like SIGTERM or a number'),
]);

const bindMount = z.strictObject({
  type: z.literal('bind'),
  /** Host path. */
  source: absolutePath,
  /** Path inside the container. */
  target: absolutePath,
  readonly: z.boolean().optional(),
  /** Bind submounts too (Docker's default for binds). */
  recursive: z.boolean().optional(),
  propagation: z.enum(['private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave']).optional(),
});

const tmpfsMount = z.strictObject({
  type: z.literal('tmpfs'),
  target: absolutePath,
  /** Size limit; unlimited (half of RAM, the kernel default) when absent. */
  size: byteSize.optional(),
  /** Permission bits of the tmpfs root, e.g. 0o1777. */
  mode: z.number().int().min(0).max(0o7777).optional(),
  readonly: z.boolean().optional(),
  /** Extra mount options: nosuid, nodev, noexec, uid=, gid=... */
  options: z.array(z.string()).optional(),
});

/** A mount in the options: a host directory or file bound in, or a fresh tmpfs. */
export const mountOption = z.discriminatedUnion('type', [bindMount, tmpfsMount]);

/** A container name, as Docker allows them. */
export const containerNameSchema = z
  .string()
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'must match [a-zA-Z0-9][a-zA-Z0-9_.-]*')
  .max(128);

const namespaceMode = z.union([z.enum(['private', 'host']), z.strictObject({ path: absolutePath })]);

const stdioOption = z.union([z.enum(['pipe', 'inherit', 'ignore']), z.number().int().nonnegative()]);

const hostnameSchema = z
  .string()
  .max(64)
  .regex(/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/, {
    message: 'must be a valid hostname (letters, digits, hyphens and dots, at most 64 characters)',
  });

/** Resource limits with Docker's names and units. */
export const resourcesOption = z
  .strictObject({
    /** Memory limit (bytes or "512m"). */
    memory: byteSize.optional(),
    /** Memory + swap limit; -1 = unlimited swap. Defaults to twice `memory` as Docker does. */
    memorySwap: z.union([z.literal(-1), byteSize]).optional(),
    /** Soft memory limit. */
    memoryReservation: byteSize.optional(),
    /** Number of CPUs, e.g. 1.5 → quota 150000 per 100000 µs period. */
    cpus: z.number().positive().max(4096).optional(),
    /** Relative CPU weight (Docker's --cpu-shares, 2..262144). */
    cpuShares: z.number().int().min(2).max(262144).optional(),
    /** CFS period in µs (1000..1000000). */
    cpuPeriod: z.number().int().min(1000).max(1_000_000).optional(),
    /** CFS quota in µs (≥ 1000), -1 = unlimited. */
    cpuQuota: z.union([z.literal(-1), z.number().int().min(1000)]).optional(),
    /** CPUs allowed, e.g. "0-1" or "0,2". */
    cpusetCpus: z.string().regex(/^\d+(-\d+)?(,\d+(-\d+)?)*$/, 'must be a CPU list like 0-1,3').optional(),
    /** Memory nodes allowed, e.g. "0". */
    cpusetMems: z.string().regex(/^\d+(-\d+)?(,\d+(-\d+)?)*$/, 'must be a node list like 0-1').optional(),
    /** Maximum number of processes/threads; -1 or 0 = unlimited. */
    pidsLimit: z.number().int().min(-1).optional(),
  })
  .refine((r) => !(r.cpus !== undefined && (r.cpuQuota !== undefined || r.cpuPeriod !== undefined)), {
    message: 'cpus cannot be combined with cpuQuota/cpuPeriod (Docker rejects this too)',
  })
  .refine((r) => r.memory === undefined || r.memory >= 6 * 1024 * 1024, {
    message: 'memory must be at least 6m (Docker\'s minimum)',
    path: ['memory'],
  })
  .refine(
    (r) => r.memorySwap === undefined || r.memorySwap === -1 || (r.memory !== undefined && r.memorySwap >= r.memory),
    { message: 'memorySwap must be -1 or at least memory, and needs memory to be set', path: ['memorySwap'] },
  );

const ulimitName = z.enum([
  'core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio',
  'rttime', 'sigpending', 'stack', 'as',
]);

/** The options of `Container.create()`. See the README's API tour for examples. */
/** A terminal's size in character cells. */
export const terminalSizeSchema = z.strictObject({
  rows: z.number().int().min(1).max(65535),
  columns: z.number().int().min(1).max(65535),
});

export const containerOptionsSchema = z
  .strictObject({
    /** Host directory holding the root filesystem (or use `image`). */
    rootfs: absolutePath.optional(),
    /** An image reference (`busybox`, `localhost:5000/app:v1`): its layers become the rootfs, its config the defaults. */
    image: z.string().min(1).optional(),
    /** When to pull `image`: when it is missing (default), always, or never. */
    pull: z.enum(['missing', 'always', 'never']).optional(),
    /** Registry settings for pulling `image`. */
    registry: z
      .strictObject({
        mirrors: z.array(z.string().url()).optional(),
        insecureRegistries: z.array(z.string()).optional(),
        platform: z.string().optional(),
      })
      .optional(),
    /** The command; with `entrypoint`, the arguments to it (as Docker's CMD). */
    cmd: z.array(z.string().refine((s) => !s.includes('\0'), 'must not contain NUL bytes')).optional(),
    /** Prepended to `cmd` (as Docker's ENTRYPOINT). */
    entrypoint: z.array(z.string()).optional(),
    /** Environment as `KEY=value` strings or an object. */
    env: z
      .union([
        z.array(z.string().regex(/^[^=\0]+=[^\0]*$/, 'must look like KEY=value')),
        z.record(z.string().regex(/^[^=\0]+$/, 'must not contain "="'), z.string()),
      ])
      .optional(),
    /** Working directory inside the container (created if missing). */
    workdir: absolutePath.optional(),
    /** `user`, `uid`, `user:group` or `uid:gid`, resolved against the container's /etc/passwd and /etc/group. */
    user: z.string().regex(/^[^:\s]+(:[^:\s]+)?$/, 'must be user, uid, user:group or uid:gid').optional(),
    /** Extra groups (names or gids). */
    groupAdd: z.array(z.string().min(1)).optional(),
    /** Container name, unique in the state root. */
    name: containerNameSchema.optional(),
    hostname: hostnameSchema.optional(),
    domainname: hostnameSchema.optional(),
    readonlyRootfs: z.boolean().optional(),
    mounts: z.array(mountOption).optional(),
    resources: resourcesOption.optional(),
    capAdd: z.array(capabilityName).optional(),
    capDrop: z.array(capabilityName).optional(),
    noNewPrivileges: z.boolean().optional(),
    /** 'default' (Docker's profile), 'unconfined', a profile file's path, or a profile in Docker's format. */
    seccomp: seccompOptionSchema.optional(),
    ulimits: z
      .array(
        z
          .strictObject({ name: ulimitName, soft: z.number().int().min(-1), hard: z.number().int().min(-1) })
          .refine((u) => u.hard === -1 || (u.soft !== -1 && u.soft <= u.hard), 'soft must not exceed hard'),
      )
      .optional(),
    /** Namespace sharing, as Docker's --pid/--ipc/--uts/--network/--cgroupns: private (default), host, or a path. */
    namespaces: z
      .strictObject({
        pid: namespaceMode.optional(),
        ipc: namespaceMode.optional(),
        uts: namespaceMode.optional(),
        network: z.union([z.enum(['none', 'host']), z.strictObject({ path: absolutePath })]).optional(),
        cgroup: namespaceMode.optional(),
      })
      .optional(),
    /** stdin/stdout/stderr: a pipe (Node stream on the container object), inherited from this process, /dev/null, or an fd. */
    stdin: stdioOption.optional(),
    stdout: stdioOption.optional(),
    stderr: stdioOption.optional(),
    /** A pseudo-terminal as stdin/stdout/stderr (Docker's -t). */
    tty: z.boolean().optional(),
    consoleSize: terminalSizeSchema.optional(),
    /** Keep running after this process exits (opt-in; by default the container dies with its owner). */
    detached: z.boolean().optional(),
    stopSignal: signalName.optional(),
    /** Seconds `stop()` waits before SIGKILL. */
    stopTimeout: z.number().nonnegative().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    /** Namespaced kernel parameters, e.g. `{ 'net.ipv4.ip_forward': '1' }`. */
    sysctls: z.record(z.string(), z.string()).optional(),
    /** Docker's --privileged: every capability the host can grant, every host device, no masked paths. */
    privileged: z.boolean().optional(),
    /** Host devices (Docker's --device): `'/dev/fuse'`, `'/dev/sdb:/dev/xvdb:r'`, or objects. */
    devices: z
      .array(
        z.union([
          z.string().min(1),
          z.strictObject({ path: z.string().min(1), containerPath: z.string().min(1).optional(), permissions: z.string().optional() }),
        ]),
      )
      .optional(),
    /** Extra device cgroup rules (Docker's --device-cgroup-rule): `'c 10:229 rwm'`. */
    deviceCgroupRules: z.array(z.string()).optional(),
    /** Replaces the default masked paths (`[]` masks nothing). */
    maskedPaths: z.array(absolutePath).optional(),
    /** Replaces the default read-only paths (`[]` leaves /proc/sys and the others writable as far as caps allow). */
    readonlyPaths: z.array(absolutePath).optional(),
    /** A user namespace: explicit uid/gid maps, or 'auto' for a private range. */
    userns: usernsOptionSchema.optional(),
    /** Run a small init as PID 1 that forwards signals and reaps zombies (Docker's --init). */
    init: z.boolean().optional(),
    /** How stdout/stderr are logged (Docker's --log-driver, --log-opt max-size / max-file). */
    log: z
      .strictObject({
        driver: z.enum(['json-file', 'none']).optional(),
        maxSize: byteSize.optional(),
        maxFile: z.number().int().min(1).max(100).optional(),
      })
      .optional(),
    /** When the owner starts the program again after it exited (Docker's --restart). */
    restartPolicy: restartPolicySchema.optional(),
    ...containerNetworkFields,
  })
  .refine((o) => !(o.privileged && o.userns !== undefined), {
    // Docker refuses this too: host devices and capabilities over the host mean nothing to a remapped root.
    message: 'privileged cannot be combined with userns: a privileged container runs in the host\'s user namespace',
    path: ['privileged'],
  })
  .refine((o) => !(o.userns !== undefined && (o.network === 'host' || o.network?.startsWith('container:'))), {
    // Those namespaces belong to another user namespace (the host's, the other container's), in which the
    // container's root has no privilege. Bridge networks are wired after the clone (lib/network/endpoint.ts).
    message: 'userns cannot be combined with network "host" or "container:<id>": the container\'s root has no privilege in that namespace\'s user namespace (use a bridge network or "none")',
    path: ['network'],
  })
  .refine((o) => (o.rootfs === undefined) !== (o.image === undefined), {
    message: 'give exactly one of rootfs (a directory) and image (a reference)',
    path: ['rootfs'],
  })
  .refine((o) => o.image !== undefined || o.cmd !== undefined || o.entrypoint !== undefined, {
    message: 'cmd (or entrypoint) is required: there is no image to take a default command from',
    path: ['cmd'],
  })
  .refine((o) => o.image !== undefined || [...(o.entrypoint ?? []), ...(o.cmd ?? [])].length > 0, {
    message: 'the command must not be empty',
    path: ['cmd'],
  })
  .refine((o) => o.userns === undefined || Object.values(o.namespaces ?? {}).every((m) => m === 'private' || m === 'none'), {
    message: 'with userns every namespace must be private: the host\'s (or another container\'s) namespaces belong to a user namespace the container\'s root has no privilege in (Docker refuses --pid=host and --network=host with userns-remap too)',
    path: ['namespaces'],
  });

/** A byte size: a number of bytes, or Docker's syntax such as `'512m'`, `'1g'`, `'65536k'`. */
export type ByteSize = number | string;

/** How one of the container's standard streams is connected: a pipe exposed as a Node stream on the container,
 * this process's own stream, /dev/null, or an open file descriptor of this process. */
export type StdioOption = 'pipe' | 'inherit' | 'ignore' | number;

/** Private (default) or the host's namespace, or an existing one to join by path (e.g. `/proc/<pid>/ns/uts`). */
export type NamespaceMode = 'private' | 'host' | { path: string };

/** A host directory or file bound into the container. */
export interface BindMountOption {
  type: 'bind';
  /** Absolute host path. */
  source: string;
  /** Absolute path inside the container (created if missing, resolved inside the rootfs). */
  target: string;
  /** Mount read-only. */
  readonly?: boolean;
  /** Bind submounts too (default true, as Docker's binds). */
  recursive?: boolean;
  /** Mount propagation (default private). */
  propagation?: 'private' | 'rprivate' | 'shared' | 'rshared' | 'slave' | 'rslave';
}

/** A fresh tmpfs. */
export interface TmpfsMountOption {
  type: 'tmpfs';
  /** Absolute path inside the container. */
  target: string;
  /** Size limit; the kernel default (half of RAM) when absent. */
  size?: ByteSize;
  /** Permission bits of its root directory, e.g. `0o1777`. */
  mode?: number;
  readonly?: boolean;
  /** Extra mount options: `uid=1000`, `exec`, `dev`, ... (`nosuid,nodev,noexec` unless `suid`/`dev`/`exec`). */
  options?: string[];
}

/** A mount in the options. */
export type MountOption = BindMountOption | TmpfsMountOption;

/** Resource limits, with Docker's names, units and conversions. */
export interface ResourcesOption {
  /** Memory limit (bytes or `'512m'`; at least 6m). */
  memory?: ByteSize;
  /** Memory + swap; `-1` = unlimited swap. Default: twice `memory` (as Docker). Needs `memory`. */
  memorySwap?: ByteSize | -1;
  /** Soft memory limit. */
  memoryReservation?: ByteSize;
  /** CPUs, e.g. `1.5` → a CFS quota of 150000 µs per 100000 µs period. Not with `cpuQuota`/`cpuPeriod`. */
  cpus?: number;
  /** Relative CPU weight (Docker's `--cpu-shares`, 2..262144; converted to `cpu.weight` on cgroup v2). */
  cpuShares?: number;
  /** CFS period in µs (1000..1000000). */
  cpuPeriod?: number;
  /** CFS quota in µs (≥ 1000), `-1` = unlimited. */
  cpuQuota?: number;
  /** CPUs the container may use, e.g. `'0-1,3'`. */
  cpusetCpus?: string;
  /** Memory nodes the container may use, e.g. `'0'`. */
  cpusetMems?: string;
  /** Maximum number of processes and threads; `-1` or `0` = unlimited. */
  pidsLimit?: number;
}

/** A resource limit (`ulimit`). `-1` means unlimited. */
export interface UlimitOption {
  name: 'core' | 'cpu' | 'data' | 'fsize' | 'locks' | 'memlock' | 'msgqueue' | 'nice' | 'nofile' | 'nproc' | 'rss' |
    'rtprio' | 'rttime' | 'sigpending' | 'stack' | 'as';
  soft: number;
  hard: number;
}

/** The options of `Container.create()` and `Container.run()`. Names follow `docker run`'s flags. */
export interface ContainerOptions {
  /** Host directory holding the root filesystem (absolute). Exactly one of `rootfs` and `image`. */
  rootfs?: string;
  /**
   * An image reference (`busybox`, `localhost:5000/app:v1`), pulled if missing: its layers (unpacked once, shared)
   * under a per-container overlay become the rootfs, and its config supplies the defaults (Entrypoint, Cmd, Env,
   * WorkingDir, User, StopSignal), as `docker run` does.
   */
  image?: string;
  /** When to pull `image`: `missing` (default), `always`, `never`. */
  pull?: 'missing' | 'always' | 'never';
  /** Registry settings for pulling `image`: mirrors for docker.io, plain-HTTP registries, the platform. */
  registry?: { mirrors?: string[]; insecureRegistries?: string[]; platform?: string };
  /** The command; with `entrypoint`, its arguments (Docker's CMD). Replaces the image's Cmd. */
  cmd?: string[];
  /** Prepended to `cmd` (Docker's ENTRYPOINT). */
  entrypoint?: string[];
  /** Environment as `KEY=value` strings or an object. `PATH` and `HOME` get Docker's defaults when absent. */
  env?: string[] | Record<string, string>;
  /** Working directory inside the container; created (root-owned, 0755) when missing. Default `/`. */
  workdir?: string;
  /** `user`, `uid`, `user:group` or `uid:gid`, resolved against the rootfs' /etc/passwd and /etc/group. */
  user?: string;
  /** Extra supplementary groups (names or gids). */
  groupAdd?: string[];
  /** Unique name in the state root. Default `berth-<short id>`. */
  name?: string;
  /** Hostname (default: the first 12 characters of the id). */
  hostname?: string;
  /** NIS domain name. */
  domainname?: string;
  /** Mount the root filesystem read-only. */
  readonlyRootfs?: boolean;
  /** Bind mounts and tmpfs mounts, applied after the defaults (a mount at a default's path replaces it). */
  mounts?: MountOption[];
  /** cgroup limits. */
  resources?: ResourcesOption;
  /** Capabilities to add to Docker's default set (`NET_ADMIN`, `CAP_SYS_TIME`, `ALL`). */
  capAdd?: string[];
  /** Capabilities to remove from it (`ALL` drops every one; `capAdd` entries are then kept). */
  capDrop?: string[];
  /** Set no_new_privs: setuid binaries and file capabilities grant nothing. */
  noNewPrivileges?: boolean;
  /**
   * The seccomp filter: `'default'` (Docker's default profile, also the default), `'unconfined'` (none), the path
   * of a profile in Docker's JSON format, or such a profile as an object. Capability conditions of the profile
   * follow `capAdd`/`capDrop`, as with Docker (`capAdd: ['SYS_ADMIN']` also allows mount, unshare, setns...).
   */
  seccomp?: SeccompOption;
  /** rlimits. */
  ulimits?: UlimitOption[];
  /** Which namespaces to share with the host or join (`--pid`, `--ipc`, `--uts`, `--network`, `--cgroupns`). */
  namespaces?: {
    pid?: NamespaceMode;
    ipc?: NamespaceMode;
    uts?: NamespaceMode;
    /** `'none'` (default: a private namespace with loopback up), `'host'`, or `{ path }`. */
    network?: 'none' | 'host' | { path: string };
    cgroup?: NamespaceMode;
  };
  /** Default `'ignore'` (/dev/null). */
  stdin?: StdioOption;
  /** Default `'pipe'` (`'ignore'` when detached). Unread pipe output eventually blocks the container. */
  stdout?: StdioOption;
  /** Default `'pipe'` (`'ignore'` when detached). */
  stderr?: StdioOption;
  /**
   * Docker's `-t`: the program gets a pseudo-terminal, opened in the container's own devpts, as its stdin, stdout,
   * stderr, controlling terminal and /dev/console. Its output (stdout and stderr as one stream, with the terminal's
   * CR LF line ends) is {@link Container.stdout} and the log's `stdout`; with `stdin: 'pipe'`,
   * {@link Container.stdin} types into it. Other stdio choices are refused with a terminal: only `'pipe'` and
   * `'ignore'` make sense. Resize with {@link Container.resize}. `TERM=xterm` is set unless `env` sets TERM.
   */
  tty?: boolean;
  /** The terminal's size before the program starts (default 24 rows × 80 columns). */
  consoleSize?: { rows: number; columns: number };
  /** Keep running after this process exits (by default the container dies with its owner). */
  detached?: boolean;
  /** Signal `stop()` sends first (default SIGTERM). */
  stopSignal?: string | number;
  /** Seconds `stop()` waits before SIGKILL (default 10). */
  stopTimeout?: number;
  /** Free-form metadata, shown by `inspect()` and `list()`. */
  labels?: Record<string, string>;
  /** Namespaced kernel parameters, e.g. `{ 'net.ipv4.ip_unprivileged_port_start': '0' }`. */
  sysctls?: Record<string, string>;
  /**
   * Docker's `--privileged`: every capability this process can grant (its bounding set), every host device with
   * all access, sysfs and cgroupfs writable, nothing masked or read-only. The container can then act on the host
   * as root would: use it for trusted workloads only.
   */
  privileged?: boolean;
  /**
   * Host devices to pass in (Docker's `--device`): `'/dev/fuse'`, `'/dev/sdb:/dev/xvdb'` (another path inside),
   * `'/dev/sdb:/dev/xvdb:r'` (cgroup permissions, default `rwm`), or `{ path, containerPath, permissions }`.
   * A directory passes every device under it.
   */
  devices?: (string | { path: string; containerPath?: string; permissions?: string })[];
  /** Extra device cgroup rules (Docker's `--device-cgroup-rule`), e.g. `'c 10:229 rwm'` or `'b 8:* r'`. */
  deviceCgroupRules?: string[];
  /** Replaces Docker's masked paths (/proc/kcore, /proc/keys, ...); `[]` masks nothing. */
  maskedPaths?: string[];
  /** Replaces Docker's read-only paths (/proc/sys, /proc/sysrq-trigger, ...); `[]` makes none read-only. */
  readonlyPaths?: string[];
  /**
   * Run in a user namespace, so that root in the container is an unprivileged id on the host. `'auto'` gives
   * the container a private range of 65536 ids that no other container of the state root uses (from the
   * subordinate ids of the user `berth` in /etc/subuid and /etc/subgid, else from 100000 up); or give the maps,
   * each a list of `{ containerID, hostID, size }` ranges that must map container id 0 and must not map host id 0.
   * The rootfs (a directory or an image) is shown through idmapped mounts, so its files keep their owners inside,
   * and whatever the container writes lands in its own upper directory with the mapped ids. See docs/security.md.
   */
  userns?: UsernsOption;
  /**
   * Docker's `--network`: `'bridge'` (the default network), a user network's name, `'none'`, `'host'`, or
   * `'container:<id or name>'` (share a running container's). With it, /etc/hosts, /etc/hostname and
   * /etc/resolv.conf are written per container and bind-mounted. Absent: `namespaces.network` decides (a
   * private namespace with loopback only, by default). See docs/network.md.
   */
  network?: string;
  /** Extra names the container answers to on a user network (Docker's `--network-alias`). */
  networkAliases?: string[];
  /**
   * More networks to connect the container to when it is created (Docker's repeated `--network`), each with its
   * own aliases: `eth1`, `eth2`, ... as with `network.connect()`. Needs `network` to be a bridge network.
   */
  networks?: NetworkAttachment[];
  /**
   * Ports to publish on the host (Docker's `-p`); bridge networks only. They are served by a userland proxy in the
   * creating process: with `detached`, they close when that process exits while the container runs on (and
   * `inspect()` stops listing them). Containers made by the `berth` command are owned by their shim, which lives as
   * long as they do, so their ports do too.
   */
  ports?: PortOption[];
  /** Nameservers for the container's resolv.conf instead of the host's (Docker's `--dns`). */
  dns?: string[];
  /** Search domains for the container's resolv.conf (Docker's `--dns-search`). */
  dnsSearch?: string[];
  /**
   * Docker's `--init`: a small init (berth's docker-init, mounted read-only at /sbin/docker-init) runs as PID 1 with
   * the program as its child. It forwards the signals it receives to the program (so `stop()` ends a program that
   * installs no SIGTERM handler, which PID 1 itself would ignore), reaps orphaned zombies, and exits with the
   * program's status (128 + N when signal N killed it; 127/126 when the program cannot be found/run). Ignored, as
   * by Docker, when the container shares the host's or another pid namespace. See docs/runtime.md#init.
   */
  init?: boolean;
  /**
   * How stdout and stderr are logged (Docker's `--log-driver` and `--log-opt`): `json-file` (default) keeps them
   * in the container's directory for `logs()`, rotated at `maxSize` bytes (default `'20m'`, `0` unlimited) with
   * `maxFile` files kept (default 5); `none` logs nothing. Streams connected with `'inherit'` or an fd are not
   * logged. See docs/cli.md#logs.
   */
  log?: { driver?: 'json-file' | 'none'; maxSize?: ByteSize; maxFile?: number };
  /**
   * Docker's `--restart`: when the program exits, its owner starts it again — `{ name: 'on-failure' }` after a
   * non-zero exit status (at most `maximumRetryCount` times when given), `'always'` / `'unless-stopped'` whatever
   * the status, `'no'` (default) never; never after a deliberate `stop()`, `kill()` or `remove()`. Restarts are
   * delayed 100 ms, doubling up to a minute. There is no daemon: the policy acts only while the owner process
   * lives (for containers made by the `berth` command, their shim). See docs/runtime.md#restarting-containers.
   */
  restartPolicy?: RestartPolicy;
}

/** Options after validation (sizes are numbers). */
export type ValidContainerOptions = z.output<typeof containerOptionsSchema>;

// The hand-written interfaces above are what users read; these checks keep them and the schema in step.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const optionsMatch: Same<z.input<typeof containerOptionsSchema>, ContainerOptions> = true;
const mountsMatch: Same<z.input<typeof mountOption>, MountOption> = true;
const resourcesMatch: Same<z.input<typeof resourcesOption>, ResourcesOption> = true;
void optionsMatch;
void mountsMatch;
void resourcesMatch;

/** Turns a zod error into an `InvalidOptionsError` naming every bad field. */
export function toInvalidOptions(what: string, error: z.ZodError): InvalidOptionsError {
  return new InvalidOptionsError(
    what,
    error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
  );
}

/** Validates user options; throws `InvalidOptionsError` listing each bad field. */
export function parseContainerOptions(input: unknown): ValidContainerOptions {
  const result = containerOptionsSchema.safeParse(input);
  if (!result.success) throw toInvalidOptions('container options', result.error);
  return result.data;
}
