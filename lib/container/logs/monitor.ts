/**
 * The log monitor of a detached container: a small Node process, started by the owner right after the container,
 * that outlives the owner (its own session, no parent-death signal) and does what Docker's daemon does for such a
 * container: it reads the container's stdout and stderr pipes into the json-file log, and when the container's
 * init exits after the owner is gone, records the exit in the state and the `die` event. It ends when the pipes
 * close (every process of the container exited). containerd-shim and Podman's conmon play this role elsewhere.
 *
 * Cost: one Node process per detached container that logs (~40 MB of memory while the container runs); a
 * detached container with `log: { driver: 'none' }` (or streams of its own) has none.
 * @module
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { compiledScript } from '../entry-script.js';
import type { ProcessIdentity } from '../state.js';
import type { LogConfig } from './json-file.js';

/** What the monitor process is told (as its one argument, JSON). */
export interface LogMonitorConfig {
  root: string;
  id: string;
  log: LogConfig;
  /** Which of fd 3 (stdout) and fd 4 (stderr) it holds. */
  streams: ('stdout' | 'stderr')[];
  init: ProcessIdentity;
  owner: ProcessIdentity;
}

/**
 * Starts the monitor with the read ends `fds` of the container's output pipes (the caller closes its copies
 * afterwards). Its own errors go to `monitor.log` in the container's directory.
 */
export function spawnLogMonitor(config: LogMonitorConfig, fds: { stdout?: number | undefined; stderr?: number | undefined }): void {
  const script = compiledScript('container/logs/monitor-main.js');
  const errors = openSync(join(config.root, 'containers', config.id, 'monitor.log'), 'a', 0o600);
  try {
    const child = spawn(process.execPath, [script, JSON.stringify(config)], {
      stdio: ['ignore', 'ignore', errors, fds.stdout ?? 'ignore', fds.stderr ?? 'ignore'],
      detached: true, // its own session: a terminal's ^C or hangup for the owner does not reach it
      cwd: '/', // never pin the owner's directory for the container's lifetime
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
    child.on('error', () => undefined); // reported through the log file, if at all: logging never fails a create
    child.unref();
  } finally {
    closeSync(errors);
  }
}
