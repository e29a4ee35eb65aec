/**
 * Runs the built `berth` command as a user would: a separate process (`node dist/lib/cli/main.js ...`), with an
 * environment of the test's choosing, capturing its output and exit status.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The compiled CLI (npm test builds it first). */
export const CLI = fileURLToPath(new URL('../../dist/lib/cli/main.js', import.meta.url));

/** What a run of the CLI produced. */
export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A running CLI process, with its output so far. */
export interface CliProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves when it exited. */
  done: Promise<CliResult>;
  /** Resolves once stdout matches `re` (rejects after `timeoutMs`). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<void>;
}

/** Starts `berth args...` with `env` (added to a minimal environment: PATH and HOME). */
export function startCli(args: readonly string[], env: Record<string, string>, input?: string): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin!.end(input ?? '');
  let stdout = '';
  let stderr = '';
  const watchers: { re: RegExp; resolve: () => void }[] = [];
  child.stdout!.on('data', (d) => {
    stdout += d;
    for (const w of [...watchers]) {
      if (w.re.test(stdout)) {
        watchers.splice(watchers.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<CliResult>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    done,
    waitFor(re, timeoutMs = 15_000) {
      if (re.test(stdout)) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re} in stdout: ${JSON.stringify(stdout)} stderr: ${JSON.stringify(stderr)}`)), timeoutMs);
        watchers.push({ re, resolve: () => { clearTimeout(timer); resolve(); } });
      });
    },
  };
}

/** Runs `berth args...` to completion. */
export function cli(args: readonly string[], env: Record<string, string>, input?: string): Promise<CliResult> {
  return startCli(args, env, input).done;
}
