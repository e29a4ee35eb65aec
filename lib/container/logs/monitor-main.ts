/**
 * Entry point of a detached container's log monitor (see ./monitor.ts): records fd 3 (stdout) and fd 4 (stderr)
 * into the container's json-file log until they close, and records the container's exit if its owner is gone
 * by then.
 * @module
 */
import { closeSync } from 'node:fs';
import { join } from 'node:path';
import { native } from '../../native.js';
import { releaseContainerNetwork } from '../../network/container-network.js';
import { recordDeath } from '../container-events.js';
import { isAlive, StateRoot } from '../state.js';
import { captureOutput } from './capture.js';
import { LogRecorder } from './json-file.js';
import type { LogMonitorConfig } from './monitor.js';

const config = JSON.parse(process.argv[2] ?? '{}') as LogMonitorConfig;
const dir = join(config.root, 'containers', config.id);
const fds = {
  stdout: config.streams.includes('stdout') ? 3 : undefined,
  stderr: config.streams.includes('stderr') ? 4 : undefined,
};
const output = captureOutput(fds, { stdout: 'log', stderr: 'log' }, new LogRecorder(dir, config.id, config.log, config.streams), {
  keepAlive: true,
});

/** The init exited: if its owner is gone, nobody else will record it now. */
async function initExited(): Promise<void> {
  if (isAlive(config.owner)) return; // the owner records the exit itself
  const root = new StateRoot(config.root);
  const state = root.readState(config.id);
  // Started again meanwhile (its record names another process): that run is somebody else's to record.
  if (!state || state.process?.pid !== config.init.pid || state.process.startTime !== config.init.startTime) return;
  if (state.status !== 'exited') {
    root.writeState({ ...state, status: 'exited', finishedAt: state.finishedAt ?? new Date().toISOString() });
  }
  recordDeath(config.root, state, { exitCode: state.exitCode, oomKilled: state.oomKilled });
  await releaseContainerNetwork(config.root, config.id, state.network).catch(() => undefined);
}

let exited: Promise<void> = Promise.resolve();
if (isAlive(config.init)) {
  let pidfd = -1;
  try {
    pidfd = native.pidfdOpen(config.init.pid);
  } catch {
    // already gone
  }
  if (pidfd >= 0 && isAlive(config.init)) {
    exited = new Promise<void>((resolve) => {
      const poller = native.onReadable(pidfd, () => {
        poller.close();
        closeSync(pidfd);
        resolve(initExited());
      });
    });
  } else {
    if (pidfd >= 0) closeSync(pidfd);
    exited = initExited();
  }
} else {
  exited = initExited();
}

await Promise.all([output.finish(Number.POSITIVE_INFINITY), exited]);
