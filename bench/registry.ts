/**
 * A throw-away registry for the pull benchmark: Debian's docker-registry on a free 127.0.0.1 port, without auth,
 * its storage in a directory the caller removes. (The test suite has a richer one in test/helpers, which the
 * benchmark build does not compile.)
 * @module
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Daemon } from './proc.js';

export const REGISTRY_BIN = '/usr/bin/docker-registry';

export interface BenchRegistry {
  /** `127.0.0.1:PORT`. */
  host: string;
  daemon: Daemon;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await res.body?.cancel();
    return true;
  } catch {
    return false;
  }
}

/** Starts a registry with its config, storage and log under `dir` (created), and waits until `/v2/` answers. */
export async function startRegistry(dir: string): Promise<BenchRegistry> {
  mkdirSync(dir, { recursive: true });
  // The port is free when we look; another process could take it before the registry binds, so retry.
  for (let attempt = 0; ; attempt++) {
    const host = `127.0.0.1:${await freePort()}`;
    const configPath = join(dir, 'config.yml');
    writeFileSync(
      configPath,
      'version: 0.1\n' +
        'log:\n  level: error\n  accesslog:\n    disabled: true\n' +
        `storage:\n  filesystem:\n    rootdirectory: ${JSON.stringify(join(dir, 'data'))}\n` +
        '  maintenance:\n    uploadpurging:\n      enabled: false\n' +
        `http:\n  addr: ${JSON.stringify(host)}\n  secret: ${JSON.stringify(randomBytes(16).toString('hex'))}\n`,
    );
    // A clean environment: REGISTRY_* variables would silently override the config file.
    const daemon = Daemon.start(REGISTRY_BIN, ['serve', configPath], join(dir, `registry-${attempt}.log`), {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
    });
    try {
      await daemon.waitReady('docker-registry', () => answers(`http://${host}/v2/`));
      return { host, daemon, stop: () => daemon.stop() };
    } catch (e) {
      await daemon.stop(0);
      if (attempt < 3 && /address already in use/.test(String(e))) continue;
      throw e;
    }
  }
}
