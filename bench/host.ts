/**
 * What the benchmarks report about the machine, and the checks that they left nothing behind on it.
 * @module
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release } from 'node:os';
import { join } from 'node:path';

export interface Environment {
  kernel: string;
  cpus: number;
  cpuModel: string;
  node: string;
  /** 1-minute load average when the benchmark started: other work on this small VM skews every number. */
  load: number;
  cgroups: string;
  /** First line of `<runtime> --version`, or null when it is not installed. */
  versions: Record<string, string | null>;
}

interface MountEntry {
  source: string;
  target: string;
  type: string;
  options: string;
}

/** /proc/self/mounts, with the octal escapes (`\040` for a space) decoded. */
export function mounts(): MountEntry[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [source = '', target = '', type = '', options = ''] = line.split(' ');
      return { source: unescape(source), target: unescape(target), type, options };
    });
}

/** "v2", "v1 (…)" or "hybrid (…)": crun only runs on this host because of the namespace trick when hybrid. */
export function cgroupLayout(): string {
  const all = mounts();
  const v1 = all.filter((m) => m.type === 'cgroup').map((m) => m.target.replace('/sys/fs/cgroup/', ''));
  const v2 = all.filter((m) => m.type === 'cgroup2');
  if (v2.some((m) => m.target === '/sys/fs/cgroup')) return 'v2 (unified at /sys/fs/cgroup)';
  const v1Text = `v1 hierarchies: ${v1.join(',')}`;
  const first = v2[0];
  if (!first) return `v1 (${v1Text})`;
  let controllers = '';
  try {
    controllers = readFileSync(join(first.target, 'cgroup.controllers'), 'utf8').trim();
  } catch {
    // unreadable: report the mount alone
  }
  return `hybrid (${v1Text}; cgroup2 at ${first.target} with controllers [${controllers}])`;
}

export function runtimeVersion(binary: string): string | null {
  try {
    return execFileSync(binary, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0] ?? '';
  } catch {
    return null;
  }
}

export function describeEnvironment(runtimes: readonly string[]): Environment {
  return {
    kernel: release(),
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    load: loadavg()[0] ?? 0,
    cgroups: cgroupLayout(),
    versions: Object.fromEntries(runtimes.map((r) => [r, runtimeVersion(r)])),
  };
}

/**
 * Cgroup directories (up to `depth` below each hierarchy's root) whose name matches: berth puts its containers at
 * `<hierarchy>/berth/<id>`, crun and runc (no cgroupsPath in the spec) at `<hierarchy>/<id>`.
 */
export function findCgroups(match: (name: string) => boolean, depth = 3): string[] {
  const found: string[] = [];
  const walk = (dir: string, left: number) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return; // removed meanwhile
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const path = join(dir, e.name);
      if (match(e.name)) found.push(path);
      if (left > 1) walk(path, left - 1);
    }
  };
  for (const m of mounts()) if (m.type === 'cgroup' || m.type === 'cgroup2') walk(m.target, depth);
  return found.sort();
}

/** Mount points whose source or target mentions one of `paths` (a container's mount leaked into this namespace). */
export function findMounts(paths: readonly string[]): string[] {
  return mounts()
    .filter((m) => paths.some((p) => m.target.startsWith(p) || m.source.startsWith(p)))
    .map((m) => `${m.source} on ${m.target} (${m.type})`);
}

/** Entries of a runtime's state directory (e.g. /run/crun) starting with `prefix`: containers not deleted. */
export function findRuntimeState(stateDir: string, prefix: string): string[] {
  if (!existsSync(stateDir)) return [];
  return readdirSync(stateDir).filter((n) => n.startsWith(prefix));
}

/**
 * Names in the host's /sys/fs/cgroup tmpfs underneath the cgroup2 mount at /sys/fs/cgroup/unified: invisible
 * while the mount is there, and where crun leaves `<id>/cgroup.procs` files when it runs with that mount hidden.
 * Empty when the host has no such mount; null when it could not be looked at.
 */
export function hiddenUnderUnified(): string[] | null {
  if (!mounts().some((m) => m.target === '/sys/fs/cgroup/unified')) return [];
  try {
    const out = execFileSync(
      'unshare',
      ['--mount', '--propagation', 'private', 'sh', '-c', 'umount /sys/fs/cgroup/unified && ls -A /sys/fs/cgroup/unified'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    );
    return out.split('\n').filter(Boolean);
  } catch {
    return null;
  }
}
