/**
 * `docker top`: the processes of a container — every pid in its cgroup — with the fields `ps -ef` shows, read
 * from /proc on the host (host pids, host user names, as Docker shows them).
 * @module
 */
import { readFileSync } from 'node:fs';

/** One process of a container, as `ps -ef` describes it. */
export interface ContainerProcess {
  /** Host pid. */
  pid: number;
  /** Host pid of its parent. */
  ppid: number;
  /** Effective user id (host). */
  uid: number;
  /** The host's name for `uid` (from the host's /etc/passwd), or the number. */
  user: string;
  /** CPU time used over its lifetime, percent of one CPU (ps's C column). */
  cpuPercent: number;
  /** When it started. */
  startedAt: Date;
  /** Its controlling terminal (`pts/0`), or `?`. */
  tty: string;
  /** CPU time used (user + system), seconds. */
  cpuSeconds: number;
  /** The command line, or `[name]` when it has none (a kernel thread or a zombie). */
  command: string;
  /** One-letter scheduler state from /proc (`R` running, `S` sleeping, `D`, `T` stopped, `Z` zombie...). */
  state: string;
}

/** USER_HZ: the kernel ABI fixes /proc's clock ticks at 100 per second. */
const TICKS_PER_SECOND = 100;

function bootTimeSeconds(): number {
  const m = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'));
  return m ? Number(m[1]) : 0;
}

function uptimeSeconds(): number {
  return Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
}

/** uid → name from the host's /etc/passwd (parsed by hand: nothing on the host is executed). */
function hostUsers(): Map<number, string> {
  const users = new Map<number, string>();
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length >= 3 && /^\d+$/.test(f[2]!) && !users.has(Number(f[2]))) users.set(Number(f[2]), f[0]!);
    }
  } catch {
    // no passwd: numbers it is
  }
  return users;
}

/** The name of a terminal device number as ps prints it. */
export function ttyName(ttyNr: number): string {
  if (ttyNr === 0) return '?';
  const major = (ttyNr >> 8) & 0xfff;
  const minor = (ttyNr & 0xff) | ((ttyNr >> 12) & 0xfff00);
  if (major >= 136 && major <= 143) return `pts/${(major - 136) * 256 + minor}`;
  if (major === 4) return minor < 64 ? `tty${minor}` : `ttyS${minor - 64}`;
  return `${major}:${minor}`;
}

/** Reads one process; undefined when it exited meanwhile. */
function readProcess(pid: number, users: Map<number, string>, boot: number, uptime: number): ContainerProcess | undefined {
  let stat: string;
  let status: string;
  let cmdline: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return undefined;
  }
  const open = stat.indexOf('(');
  const close = stat.lastIndexOf(')');
  const comm = stat.slice(open + 1, close);
  // Fields after the command name, which may hold spaces and parentheses: state is field 3 of stat(5).
  const f = stat.slice(close + 2).split(' ');
  const ticks = Number(f[11]) + Number(f[12]);
  const startTicks = Number(f[19]);
  const uid = Number(/^Uid:\s+\d+\s+(\d+)/m.exec(status)?.[1] ?? -1);
  const lifetime = uptime - startTicks / TICKS_PER_SECOND;
  const args = cmdline.split('\0').filter((a, i, all) => a !== '' || i < all.length - 1);
  return {
    pid,
    ppid: Number(f[1]),
    uid,
    user: users.get(uid) ?? String(uid),
    cpuPercent: lifetime > 0 ? Math.min(999, Math.floor((ticks / TICKS_PER_SECOND / lifetime) * 100)) : 0,
    startedAt: new Date((boot + startTicks / TICKS_PER_SECOND) * 1000),
    tty: ttyName(Number(f[4])),
    cpuSeconds: ticks / TICKS_PER_SECOND,
    command: args.length > 0 ? args.join(' ') : `[${comm}]`,
    state: f[0] ?? '?',
  };
}

/** The processes among `pids` that still exist, in pid order. */
export function processTable(pids: readonly number[]): ContainerProcess[] {
  const users = hostUsers();
  const boot = bootTimeSeconds();
  const uptime = uptimeSeconds();
  const out: ContainerProcess[] = [];
  for (const pid of [...pids].sort((a, b) => a - b)) {
    const p = readProcess(pid, users, boot, uptime);
    if (p) out.push(p);
  }
  return out;
}

/** ps's STIME: `HH:MM` today, `MonDD` this year, the year otherwise. */
export function formatStartTime(d: Date, now: Date = new Date()): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  if (d.toDateString() === now.toDateString()) return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (d.getFullYear() === now.getFullYear()) return `${d.toLocaleString('en-US', { month: 'short' })}${pad(d.getDate())}`;
  return String(d.getFullYear());
}

/** ps's TIME: `[DD-]HH:MM:SS` of CPU time. */
export function formatCpuTime(seconds: number): string {
  const s = Math.floor(seconds);
  const pad = (n: number) => String(n).padStart(2, '0');
  const days = Math.floor(s / 86400);
  const hms = `${pad(Math.floor((s % 86400) / 3600))}:${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}`;
  return days > 0 ? `${days}-${hms}` : hms;
}

/** The table `docker top` prints (Docker's API shape: titles and rows of strings), as `ps -ef` would. */
export function psTable(processes: readonly ContainerProcess[]): { titles: string[]; processes: string[][] } {
  return {
    titles: ['UID', 'PID', 'PPID', 'C', 'STIME', 'TTY', 'TIME', 'CMD'],
    processes: processes.map((p) => [
      p.user, String(p.pid), String(p.ppid), String(p.cpuPercent), formatStartTime(p.startedAt), p.tty,
      formatCpuTime(p.cpuSeconds), p.command,
    ]),
  };
}
