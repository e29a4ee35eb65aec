/**
 * Child processes for the pull benchmark: run a command to completion (optionally timed), and keep a daemon alive
 * for the duration of the benchmark without ever letting it outlive this process.
 * @module
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** What {@link run} returns. */
export interface RunResult {
  /** Wall time from just before the spawn to the child's exit, in ms. */
  ms: number;
  stdout: string;
  stderr: string;
}

/** Options of {@link run}. */
export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Kill the command (SIGKILL) after this long; default 10 minutes. */
  timeoutMs?: number;
  /** Where stdout goes: captured (default), or discarded (`ignore`, for a large output like `gzip -dc`). */
  stdout?: 'pipe' | 'ignore';
}

const OUTPUT_CAP = 64 * 1024;

/** The last `OUTPUT_CAP` characters are enough for an error message and keep a chatty command from filling memory. */
function capped(chunks: string[]): string {
  const text = chunks.join('');
  return text.length > OUTPUT_CAP ? text.slice(-OUTPUT_CAP) : text;
}

/**
 * Runs `cmd args` and resolves once it exited 0, with its wall time; rejects with its stderr otherwise. The
 * command runs with its parent-death signal set to SIGKILL (through setpriv), so an interrupted benchmark never
 * leaves one behind.
 */
export function run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const stdio: StdioOptions = ['ignore', options.stdout ?? 'pipe', 'pipe'];
    const out: string[] = [];
    const err: string[] = [];
    const t0 = performance.now();
    const child = spawn(...withPdeathsig(cmd, args), { stdio, env: options.env ?? process.env, cwd: options.cwd });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 600_000);
    child.stdout?.setEncoding('utf8').on('data', (s: string) => out.push(s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => err.push(s));
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      const ms = performance.now() - t0;
      clearTimeout(timer);
      const stdout = capped(out);
      const stderr = capped(err);
      if (code === 0) resolve({ ms, stdout, stderr });
      else {
        const why = signal ? `killed by ${signal}` : `exited with ${code}`;
        const detail = (stderr.trim() || stdout.trim()).split('\n').slice(-8).join('\n');
        reject(new Error(`${cmd} ${args.join(' ')}: ${why}${detail ? `: ${detail}` : ''}`));
      }
    });
  });
}

const SETPRIV = '/usr/bin/setpriv';

/** `setpriv --pdeathsig KILL cmd args` when setpriv exists: the child dies with this process. */
function withPdeathsig(cmd: string, args: readonly string[]): [string, string[]] {
  return existsSync(SETPRIV) ? [SETPRIV, ['--pdeathsig', 'KILL', cmd, ...args]] : [cmd, [...args]];
}

/** A background process (a registry, containerd) whose output goes to a log file. */
export class Daemon {
  readonly child: ChildProcess;
  readonly logPath: string;
  #stopped: Promise<void> | undefined;

  private constructor(child: ChildProcess, logPath: string) {
    this.child = child;
    this.logPath = logPath;
  }

  static start(cmd: string, args: readonly string[], logPath: string, env: NodeJS.ProcessEnv): Daemon {
    const log = openSync(logPath, 'a');
    try {
      const child = spawn(...withPdeathsig(cmd, args), { stdio: ['ignore', log, log], env });
      child.on('error', () => {}); // reported through exited() and the log
      return new Daemon(child, logPath);
    } finally {
      closeSync(log);
    }
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  /** The end of the daemon's log, for error messages. */
  logTail(chars = 2000): string {
    try {
      return readFileSync(this.logPath, 'utf8').slice(-chars);
    } catch {
      return '';
    }
  }

  /** Polls `ready` until it resolves true; throws when the daemon exits first or the deadline passes. */
  async waitReady(what: string, ready: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.exited) throw new Error(`${what} exited (${this.child.exitCode ?? this.child.signalCode}): ${this.logTail()}`);
      if (await ready()) return;
      if (Date.now() > deadline) throw new Error(`${what} not ready after ${timeoutMs / 1000} s: ${this.logTail()}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. Idempotent. */
  stop(graceMs = 10_000): Promise<void> {
    return (this.#stopped ??= (async () => {
      if (this.exited) return;
      const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      await gone;
      clearTimeout(timer);
    })());
  }
}

/** Processes (other than this one) whose command line mentions `needle`, as "pid cmdline". */
export function processesMentioning(needle: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ').trim();
      if (cmdline.includes(needle)) found.push(`${name} ${cmdline}`);
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

/** Live children of this process, as "pid comm" (zombies excluded: Node reaps them). */
export function childProcesses(): string[] {
  const found: string[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // "pid (comm) state ppid ...": comm may contain spaces and parentheses, so split after the last ')'.
      const close = stat.lastIndexOf(')');
      const [state, ppid] = stat.slice(close + 2).split(' ');
      if (Number(ppid) === process.pid && state !== 'Z') found.push(`${name} ${stat.slice(stat.indexOf('(') + 1, close)}`);
    } catch {
      // exited meanwhile
    }
  }
  return found;
}
