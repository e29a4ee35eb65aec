/**
 * `berth run` / `berth create` flags, with docker's names and syntax, turned into `Container.create()` options.
 * What berth cannot do yet is refused by name (`-t`, `-i`, `apparmor=...`), never silently ignored.
 * @module
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import type { ContainerOptions, MountOption } from '../container/options.js';
import type { RestartPolicy } from '../container/restart-policy.js';
import type { PortOption } from '../network/options.js';
import { Flags, UsageError, type FlagSpec } from './args.js';
import type { CliConfig } from './config.js';

/** The flags `create` accepts (`run` adds `--detach` and `--sig-proxy`). */
export const CONTAINER_FLAGS: FlagSpec[] = [
  { long: 'name', type: 'string', help: 'Assign a name to the container' },
  { long: 'rm', type: 'bool', help: 'Automatically remove the container and its associated anonymous volumes when it exits' },
  { long: 'env', short: 'e', type: 'list', help: 'Set environment variables', valueName: 'list' },
  { long: 'env-file', type: 'list', help: 'Read in a file of environment variables', valueName: 'list' },
  { long: 'workdir', short: 'w', type: 'string', help: 'Working directory inside the container' },
  { long: 'user', short: 'u', type: 'string', help: 'Username or UID (format: <name|uid>[:<group|gid>])' },
  { long: 'group-add', type: 'list', help: 'Add additional groups to join', valueName: 'list' },
  { long: 'entrypoint', type: 'string', help: 'Overwrite the default ENTRYPOINT of the image' },
  { long: 'hostname', short: 'h', type: 'string', help: 'Container host name' },
  { long: 'domainname', type: 'string', help: 'Container NIS domain name' },
  { long: 'label', short: 'l', type: 'list', help: 'Set meta data on a container', valueName: 'list' },
  { long: 'publish', short: 'p', type: 'list', help: 'Publish a container\'s port(s) to the host', valueName: 'list' },
  { long: 'publish-all', short: 'P', type: 'bool', help: 'Publish all exposed ports to random ports' },
  { long: 'volume', short: 'v', type: 'list', help: 'Bind mount a volume (host-dir:container-dir[:ro])', valueName: 'list' },
  { long: 'mount', type: 'list', help: 'Attach a filesystem mount to the container (type=bind|tmpfs,...)', valueName: 'mount' },
  { long: 'tmpfs', type: 'list', help: 'Mount a tmpfs directory (path[:size=64m,mode=1777,...])', valueName: 'list' },
  { long: 'read-only', type: 'bool', help: 'Mount the container\'s root filesystem as read only' },
  { long: 'network', type: 'string', help: 'Connect a container to a network (bridge, none, host, container:<name|id>, <network>)', valueName: 'network' },
  { long: 'net', type: 'string', help: 'Alias of --network', valueName: 'network' },
  { long: 'network-alias', type: 'list', help: 'Add network-scoped alias for the container', valueName: 'list' },
  { long: 'net-alias', type: 'list', help: 'Alias of --network-alias', valueName: 'list' },
  { long: 'dns', type: 'list', help: 'Set custom DNS servers', valueName: 'list' },
  { long: 'dns-search', type: 'list', help: 'Set custom DNS search domains', valueName: 'list' },
  { long: 'memory', short: 'm', type: 'string', help: 'Memory limit', valueName: 'bytes' },
  { long: 'memory-swap', type: 'string', help: 'Swap limit equal to memory plus swap: \'-1\' to enable unlimited swap', valueName: 'bytes' },
  { long: 'memory-reservation', type: 'string', help: 'Memory soft limit', valueName: 'bytes' },
  { long: 'cpus', type: 'string', help: 'Number of CPUs', valueName: 'decimal' },
  { long: 'cpu-shares', short: 'c', type: 'string', help: 'CPU shares (relative weight)', valueName: 'int' },
  { long: 'cpu-period', type: 'string', help: 'Limit CPU CFS (Completely Fair Scheduler) period', valueName: 'int' },
  { long: 'cpu-quota', type: 'string', help: 'Limit CPU CFS (Completely Fair Scheduler) quota', valueName: 'int' },
  { long: 'cpuset-cpus', type: 'string', help: 'CPUs in which to allow execution (0-3, 0,1)' },
  { long: 'cpuset-mems', type: 'string', help: 'MEMs in which to allow execution (0-3, 0,1)' },
  { long: 'pids-limit', type: 'string', help: 'Tune container pids limit (set -1 for unlimited)', valueName: 'int' },
  { long: 'ulimit', type: 'list', help: 'Ulimit options (name=soft[:hard])', valueName: 'ulimit' },
  { long: 'sysctl', type: 'list', help: 'Sysctl options (name=value)', valueName: 'map' },
  { long: 'cap-add', type: 'list', help: 'Add Linux capabilities', valueName: 'list' },
  { long: 'cap-drop', type: 'list', help: 'Drop Linux capabilities', valueName: 'list' },
  { long: 'privileged', type: 'bool', help: 'Give extended privileges to this container' },
  { long: 'device', type: 'list', help: 'Add a host device to the container', valueName: 'list' },
  { long: 'device-cgroup-rule', type: 'list', help: 'Add a rule to the cgroup allowed devices list', valueName: 'list' },
  { long: 'userns', type: 'string', help: 'User namespace to use (auto: a private range of ids; host: none)' },
  { long: 'pid', type: 'string', help: 'PID namespace to use (host)' },
  { long: 'ipc', type: 'string', help: 'IPC mode to use (host)' },
  { long: 'uts', type: 'string', help: 'UTS namespace to use (host)' },
  { long: 'security-opt', type: 'list', help: 'Security Options (seccomp=unconfined|<profile.json>, no-new-privileges, systempaths=unconfined)', valueName: 'list' },
  { long: 'stop-signal', type: 'string', help: 'Signal to stop the container' },
  { long: 'stop-timeout', type: 'string', help: 'Timeout (in seconds) to stop a container', valueName: 'int' },
  { long: 'log-driver', type: 'string', help: 'Logging driver for the container (json-file, none)' },
  { long: 'log-opt', type: 'list', help: 'Log driver options (max-size, max-file)', valueName: 'list' },
  { long: 'pull', type: 'string', help: 'Pull image before running ("always", "missing", "never")', defaultText: '"missing"' },
  { long: 'platform', type: 'string', help: 'Set platform if server is multi-platform capable' },
  { long: 'restart', type: 'string', help: 'Restart policy to apply when a container exits (no, on-failure[:max-retries], always, unless-stopped)', defaultText: '"no"' },
  { long: 'init', type: 'bool', help: 'Run an init inside the container that forwards signals and reaps processes' },
  { long: 'interactive', short: 'i', type: 'bool', help: 'Keep STDIN open even if not attached' },
  { long: 'tty', short: 't', type: 'bool', help: 'Allocate a pseudo-TTY' },
  { long: 'attach', short: 'a', type: 'list', help: 'Attach to STDIN, STDOUT or STDERR', valueName: 'list' },
];

/** What a later part of issue 6 brings; asking for it now fails clearly instead of being ignored. */
function notYet(command: string, what: string): UsageError {
  return new UsageError(command, `${what} is not supported by berth yet`);
}

/** `KEY=value` or `KEY` (taken from this process's environment, left out when unset), as docker reads -e. */
function envEntry(entry: string, env: NodeJS.ProcessEnv): string | undefined {
  if (entry.includes('=')) return entry;
  return env[entry] === undefined ? undefined : `${entry}=${env[entry]}`;
}

/** An --env-file: one variable per line, `#` comments and blank lines skipped, no quote processing (as docker). */
function envFile(path: string, env: NodeJS.ProcessEnv, command: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(command, `open ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`);
  }
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/^\s+/, '').replace(/\r$/, '');
    if (line === '' || line.startsWith('#')) continue;
    if (/\s/.test(line.split('=')[0]!)) throw new UsageError(command, `variable '${line.split('=')[0]}' contains whitespaces`);
    const e = envEntry(line, env);
    if (e !== undefined) out.push(e);
  }
  return out;
}

/** `--restart no|on-failure[:max-retries]|always|unless-stopped`, checked as docker checks it. */
export function parseRestartPolicy(text: string, command: string): RestartPolicy {
  const bad = (why: string) => new UsageError(command, `invalid restart policy "${text}": ${why}`);
  const colon = text.indexOf(':');
  const name = colon < 0 ? text : text.slice(0, colon);
  const count = colon < 0 ? undefined : text.slice(colon + 1);
  if (name === '') throw bad('the policy name is missing before the colon');
  if (name !== 'no' && name !== 'on-failure' && name !== 'always' && name !== 'unless-stopped') {
    throw bad('the policy must be one of no, always, on-failure[:max-retries] or unless-stopped');
  }
  if (count === undefined || count === '') return { name };
  if (!/^-?\d+$/.test(count)) throw bad('the maximum retry count must be an integer');
  const max = Number(count);
  if (max < 0) throw bad('the maximum retry count must not be negative');
  if (max > 0 && name !== 'on-failure') throw bad('a maximum retry count can only be given to on-failure');
  return max > 0 ? { name, maximumRetryCount: max } : { name };
}

/** `-p [ip:][hostPort:]containerPort[/proto]`. */
export function parsePublish(spec: string, command: string): PortOption {
  const bad = (why: string) => new UsageError(command, `invalid publish "${spec}": ${why}`);
  const [addr, proto = 'tcp'] = spec.split('/');
  if (proto !== 'tcp' && proto !== 'udp') throw bad(`protocol must be tcp or udp, not ${proto}`);
  if (addr!.startsWith('[')) throw bad('IPv6 addresses are not supported yet');
  const parts = addr!.split(':');
  if (parts.length > 3) throw bad('expected [ip:][hostPort:]containerPort');
  const containerPort = parts.at(-1)!;
  const hostPort = parts.length >= 2 ? parts.at(-2)! : '';
  const hostIp = parts.length === 3 ? parts[0]! : '';
  if ([containerPort, hostPort].some((p) => p.includes('-'))) throw bad('port ranges are not supported yet');
  const num = (p: string, what: string) => {
    if (!/^\d+$/.test(p) || Number(p) > 65535) throw bad(`${what} must be a port number`);
    return Number(p);
  };
  return {
    container: num(containerPort, 'the container port'),
    ...(hostPort !== '' ? { host: num(hostPort, 'the host port') } : {}),
    ...(hostIp !== '' ? { hostIp } : {}),
    protocol: proto,
  };
}

const PROPAGATIONS = new Set(['private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave']);

/** `-v /host:/container[:ro,rshared,...]`: a bind mount; a missing host directory is created, as docker does. */
export function parseVolume(spec: string, command: string): MountOption {
  const parts = spec.split(':');
  if (parts.length < 2 || parts.length > 3) {
    throw new UsageError(command, `invalid volume "${spec}": anonymous volumes are not supported yet; give host-dir:container-dir`);
  }
  const [source, target, opts = ''] = parts as [string, string, string?];
  if (!isAbsolute(source)) {
    throw new UsageError(command, `invalid volume "${spec}": named volumes are not supported yet; the host path must be absolute`);
  }
  if (!isAbsolute(target)) throw new UsageError(command, `invalid volume "${spec}": the container path must be absolute`);
  const mount: MountOption = { type: 'bind', source, target };
  for (const o of opts.split(',').filter(Boolean)) {
    if (o === 'ro' || o === 'readonly') mount.readonly = true;
    else if (o === 'rw') mount.readonly = false;
    else if (PROPAGATIONS.has(o)) mount.propagation = o as NonNullable<typeof mount.propagation>;
    else if (o === 'z' || o === 'Z' || o === 'consistent' || o === 'cached' || o === 'delegated') continue; // no SELinux labels here; macOS hints
    else throw new UsageError(command, `invalid volume "${spec}": unknown option "${o}"`);
  }
  return mount;
}

/** `--tmpfs /path[:size=64m,mode=1777,noexec,...]`. */
export function parseTmpfs(spec: string, command: string): MountOption {
  const colon = spec.indexOf(':');
  const target = colon < 0 ? spec : spec.slice(0, colon);
  if (!isAbsolute(target)) throw new UsageError(command, `invalid tmpfs "${spec}": the path must be absolute`);
  const mount: MountOption & { type: 'tmpfs' } = { type: 'tmpfs', target };
  const options: string[] = [];
  for (const o of (colon < 0 ? '' : spec.slice(colon + 1)).split(',').filter(Boolean)) {
    if (o.startsWith('size=')) mount.size = o.slice(5);
    else if (o.startsWith('mode=')) mount.mode = parseInt(o.slice(5), 8);
    else if (o === 'ro') mount.readonly = true;
    else if (o === 'rw') mount.readonly = false;
    else options.push(o);
  }
  if (options.length) mount.options = options;
  return mount;
}

/** `--mount type=bind,source=/a,target=/b,readonly` or `type=tmpfs,destination=/t,tmpfs-size=64m,tmpfs-mode=1770`. */
export function parseMount(spec: string, command: string): MountOption {
  const kv = new Map<string, string>();
  for (const field of spec.split(',')) {
    const eq = field.indexOf('=');
    kv.set((eq < 0 ? field : field.slice(0, eq)).trim().toLowerCase(), eq < 0 ? 'true' : field.slice(eq + 1));
  }
  const bad = (why: string) => new UsageError(command, `invalid mount "${spec}": ${why}`);
  const type = kv.get('type') ?? 'volume';
  const target = kv.get('target') ?? kv.get('destination') ?? kv.get('dst');
  if (!target) throw bad('target is required');
  const ro = kv.get('readonly') ?? kv.get('ro');
  const readonly = ro === undefined ? undefined : ro === 'true' || ro === '1';
  if (type === 'bind') {
    const source = kv.get('source') ?? kv.get('src');
    if (!source) throw bad('source is required for a bind mount');
    if (!existsSync(source)) throw bad(`bind source path does not exist: ${source}`);
    const propagation = kv.get('bind-propagation');
    if (propagation !== undefined && !PROPAGATIONS.has(propagation)) throw bad(`unknown bind-propagation ${propagation}`);
    return {
      type: 'bind', source, target,
      ...(readonly !== undefined ? { readonly } : {}),
      ...(propagation ? { propagation: propagation as 'private' } : {}),
      ...(kv.get('bind-recursive') === 'disabled' ? { recursive: false } : {}),
    };
  }
  if (type === 'tmpfs') {
    const size = kv.get('tmpfs-size');
    const mode = kv.get('tmpfs-mode');
    return {
      type: 'tmpfs', target,
      ...(size ? { size: /^\d+$/.test(size) ? Number(size) : size } : {}),
      ...(mode ? { mode: parseInt(mode, 8) } : {}),
      ...(readonly !== undefined ? { readonly } : {}),
    };
  }
  throw bad(`type ${type} is not supported yet (bind and tmpfs are)`);
}

function ulimit(spec: string, command: string): NonNullable<ContainerOptions['ulimits']>[number] {
  const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(spec);
  if (!m) throw new UsageError(command, `invalid ulimit "${spec}": expected name=soft[:hard]`);
  const soft = Number(m[2]);
  return { name: m[1] as 'nofile', soft, hard: m[3] === undefined ? soft : Number(m[3]) };
}

function keyValue(spec: string): [string, string] {
  const eq = spec.indexOf('=');
  return eq < 0 ? [spec, ''] : [spec.slice(0, eq), spec.slice(eq + 1)];
}

/** What `run`/`create` flags ask for, beyond the container's options. */
export interface RunPlan {
  options: ContainerOptions;
  image: string;
  autoRemove: boolean;
  pull: 'missing' | 'always' | 'never';
  platform: string | undefined;
  publishAll: boolean;
  /** Which streams a foreground `run` attaches (`-a`; default stdout and stderr, and stdin with `-i`). */
  attach: { stdin: boolean; stdout: boolean; stderr: boolean };
}

/** `-a stdin -a stdout ...`, or docker's default: stdout and stderr, and stdin with `-i`. */
function attachedStreams(f: Flags, command: string): RunPlan['attach'] {
  const list = f.list('attach').map((a) => a.toLowerCase());
  for (const a of list) {
    if (!['stdin', 'stdout', 'stderr'].includes(a)) throw new UsageError(command, `invalid argument "${a}" for "-a, --attach" flag: valid streams are STDIN, STDOUT and STDERR`);
  }
  if (list.length === 0) return { stdin: f.bool('interactive'), stdout: true, stderr: true };
  return { stdin: list.includes('stdin'), stdout: list.includes('stdout'), stderr: list.includes('stderr') };
}

/** Turns `run`/`create` flags and arguments (IMAGE [COMMAND] [ARG...]) into options. */
export function containerOptionsFromFlags(f: Flags, args: readonly string[], config: CliConfig, env: NodeJS.ProcessEnv, command: string): RunPlan {
  const attach = attachedStreams(f, command);
  const restart = f.string('restart');
  const restartPolicy = restart === undefined || restart === '' ? undefined : parseRestartPolicy(restart, command);
  if (restartPolicy && restartPolicy.name !== 'no' && f.bool('rm')) {
    // docker refuses it too: a container removed when it exits cannot be started again.
    throw new UsageError(command, 'conflicting options: --restart and --rm (a container removed at its exit cannot be restarted)');
  }
  const [image, ...cmd] = args;
  const o: ContainerOptions = { image: image! };
  if (restartPolicy && restartPolicy.name !== 'no') o.restartPolicy = restartPolicy;
  if (f.bool('tty')) o.tty = true;
  if (f.bool('interactive')) o.stdin = 'pipe';
  if (cmd.length) o.cmd = cmd;
  const name = f.string('name');
  if (name !== undefined) o.name = name.replace(/^\//, '');
  const envs = [...f.list('env-file').flatMap((p) => envFile(p, env, command)), ...f.list('env').map((e) => envEntry(e, env)).filter((e): e is string => e !== undefined)];
  if (envs.length) o.env = envs;
  if (f.has('workdir')) o.workdir = f.string('workdir')!;
  if (f.has('user')) o.user = f.string('user')!;
  if (f.list('group-add').length) o.groupAdd = f.list('group-add');
  if (f.has('entrypoint')) o.entrypoint = f.string('entrypoint') === '' ? [] : [f.string('entrypoint')!];
  if (f.has('hostname')) o.hostname = f.string('hostname')!;
  if (f.has('domainname')) o.domainname = f.string('domainname')!;
  const labels = f.list('label');
  if (labels.length) o.labels = Object.fromEntries(labels.map(keyValue));
  const ports = f.list('publish').map((p) => parsePublish(p, command));
  if (ports.length) o.ports = ports;
  const mounts: MountOption[] = [
    ...f.list('volume').map((v) => parseVolume(v, command)),
    ...f.list('mount').map((m) => parseMount(m, command)),
    ...f.list('tmpfs').map((t) => parseTmpfs(t, command)),
  ];
  for (const m of mounts) if (m.type === 'bind' && !existsSync(m.source)) mkdirSync(m.source, { recursive: true, mode: 0o755 });
  if (mounts.length) o.mounts = mounts;
  if (f.bool('read-only')) o.readonlyRootfs = true;
  // --init, or the config file's "init" default (daemon.json's key); --init=false overrides the default.
  if (f.has('init') ? f.bool('init') : config.init) o.init = true;
  // As docker: without --network a container is on the default bridge network (the library's own default is a
  // private loopback-only namespace, which costs nothing; a command-line user expects docker's).
  const network = f.string('network') ?? f.string('net') ?? 'bridge';
  o.network = network === 'default' ? 'bridge' : network;
  const aliases = [...f.list('network-alias'), ...f.list('net-alias')];
  if (aliases.length) o.networkAliases = aliases;
  if (f.list('dns').length) o.dns = f.list('dns');
  if (f.list('dns-search').length) o.dnsSearch = f.list('dns-search');

  const resources: NonNullable<ContainerOptions['resources']> = {};
  if (f.has('memory')) resources.memory = f.string('memory')!;
  if (f.has('memory-swap')) resources.memorySwap = f.string('memory-swap') === '-1' ? -1 : f.string('memory-swap')!;
  if (f.has('memory-reservation')) resources.memoryReservation = f.string('memory-reservation')!;
  if (f.has('cpus')) resources.cpus = f.number('cpus')!;
  if (f.has('cpu-shares')) resources.cpuShares = f.int('cpu-shares')!;
  if (f.has('cpu-period')) resources.cpuPeriod = f.int('cpu-period')!;
  if (f.has('cpu-quota')) resources.cpuQuota = f.int('cpu-quota')!;
  if (f.has('cpuset-cpus')) resources.cpusetCpus = f.string('cpuset-cpus')!;
  if (f.has('cpuset-mems')) resources.cpusetMems = f.string('cpuset-mems')!;
  if (f.has('pids-limit')) resources.pidsLimit = f.int('pids-limit')!;
  if (Object.keys(resources).length) o.resources = resources;

  if (f.list('ulimit').length) o.ulimits = f.list('ulimit').map((u) => ulimit(u, command));
  if (f.list('sysctl').length) o.sysctls = Object.fromEntries(f.list('sysctl').map(keyValue));
  if (f.list('cap-add').length) o.capAdd = f.list('cap-add');
  if (f.list('cap-drop').length) o.capDrop = f.list('cap-drop');
  if (f.bool('privileged')) o.privileged = true;
  if (f.list('device').length) o.devices = f.list('device');
  if (f.list('device-cgroup-rule').length) o.deviceCgroupRules = f.list('device-cgroup-rule');

  const userns = f.string('userns');
  if (userns === 'auto') o.userns = 'auto';
  else if (userns !== undefined && userns !== 'host' && userns !== '') {
    throw new UsageError(command, `invalid --userns "${userns}": berth supports auto (a private range of ids) and host`);
  }
  const namespaces: NonNullable<ContainerOptions['namespaces']> = {};
  for (const ns of ['pid', 'ipc', 'uts'] as const) {
    const mode = f.string(ns);
    if (mode === undefined || mode === '' || mode === 'private') continue;
    if (mode !== 'host') throw new UsageError(command, `invalid --${ns} "${mode}": berth supports host and private so far`);
    namespaces[ns] = 'host';
  }
  if (Object.keys(namespaces).length) o.namespaces = namespaces;

  for (const opt of f.list('security-opt')) {
    const [key, value = ''] = opt.split(/[=:](.*)/s, 2) as [string, string?];
    if (key === 'no-new-privileges') {
      if (value !== '' && value !== 'true' && value !== 'false') throw new UsageError(command, `invalid --security-opt ${opt}: no-new-privileges takes true or false`);
      o.noNewPrivileges = value !== 'false';
    } else if (key === 'systempaths' && value === 'unconfined') {
      o.maskedPaths = [];
      o.readonlyPaths = [];
    } else if (key === 'seccomp') {
      if (value === '') throw new UsageError(command, `invalid --security-opt ${opt}: seccomp takes unconfined, builtin or a profile file`);
      // docker reads the profile file where the client runs: a relative path is the caller's.
      o.seccomp = value === 'unconfined' || value === 'builtin' || value === 'default' ? value : resolvePath(value);
    } else if (key === 'apparmor' || key === 'label') {
      throw notYet(command, `--security-opt ${key}=...`);
    } else {
      throw new UsageError(command, `invalid --security-opt: "${opt}"`);
    }
  }
  if (f.has('stop-signal')) o.stopSignal = f.string('stop-signal')!;
  if (f.has('stop-timeout')) o.stopTimeout = f.int('stop-timeout')!;

  const log: NonNullable<ContainerOptions['log']> = { ...config.log };
  const driver = f.string('log-driver');
  if (driver !== undefined) {
    if (driver !== 'json-file' && driver !== 'none') throw new UsageError(command, `log driver "${driver}" is not supported (json-file, none)`);
    log.driver = driver;
  }
  for (const opt of f.list('log-opt')) {
    const [k, v] = keyValue(opt);
    if (k === 'max-size') log.maxSize = v === '-1' ? 0 : v;
    else if (k === 'max-file') log.maxFile = Number(v);
    else throw new UsageError(command, `unknown log opt '${k}' for the ${log.driver ?? 'json-file'} log driver (max-size, max-file)`);
  }
  if (Object.keys(log).length) o.log = log;

  const pull = f.string('pull') ?? 'missing';
  if (pull !== 'missing' && pull !== 'always' && pull !== 'never') {
    throw new UsageError(command, `invalid pull option: '${pull}': must be one of "always", "missing" or "never"`);
  }
  const platform = f.string('platform');
  o.registry = {
    ...(config.registryMirrors.length ? { mirrors: config.registryMirrors } : {}),
    ...(config.insecureRegistries.length ? { insecureRegistries: config.insecureRegistries } : {}),
    ...(platform ? { platform } : {}),
  };
  return { options: o, image: image!, autoRemove: f.bool('rm'), pull, platform, publishAll: f.bool('publish-all'), attach };
}
