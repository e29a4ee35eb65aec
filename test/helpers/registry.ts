/**
 * Real registries for tests: Debian's docker-registry on a free loopback port, without auth, with htpasswd Basic
 * auth, or in token mode behind {@link startTokenServer}; and real images to put in them, built with umoci from
 * busybox-static and pushed with skopeo. Every registry dies with the test process (parent-death signal plus an
 * exit hook) and its temp dir goes with `stop()`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startTokenServer, type TokenServer, type TokenServerOptions } from './token-server.js';

const run = promisify(execFile);

const REGISTRY_BIN = '/usr/bin/docker-registry';
const DIR_PREFIX = 'berth-registry-';
const BUSYBOX_BIN = '/bin/busybox';

/** Options of {@link startRegistry}. */
export interface RegistryOptions {
  /** `none` (default), `htpasswd` (Basic auth for `users`), or `token` (a token server for `users`). */
  auth?: 'none' | 'htpasswd' | 'token';
  /** username → password for htpasswd and token modes (default `{ berth: 'secret' }`). */
  users?: Record<string, string>;
  /** Token mode: passed to the token server (anonymous policy, key hint, lifetime, refresh tokens...). */
  token?: Pick<TokenServerOptions, 'anonymous' | 'policy' | 'keyHint' | 'expiresIn' | 'tokenField' | 'refreshTokens'> & {
    /** The realm the registry advertises instead of the token server's own URL (to test realm policies). */
    realm?: string;
  };
}

/** A running registry. */
export interface Registry {
  /** `127.0.0.1:PORT`. */
  host: string;
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** The temp dir holding config, storage and log; removed by `stop()`. */
  dir: string;
  /** The users it accepts (htpasswd and token modes). */
  users: Record<string, string>;
  /** Token mode: the token server the registry trusts. */
  tokenServer?: TokenServer;
  /** The registry's own log (stdout and stderr), for failure messages. */
  log(): string;
  /** Kills the registry, stops the token server, removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

const live = new Set<{ child: ChildProcess; dir: string }>();
let exitHookInstalled = false;

/** A registry must never outlive the test process, even one that dies without running afterAll hooks. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const r of live) {
      r.child.kill('SIGKILL');
      rmSync(r.dir, { recursive: true, force: true });
    }
  });
}

/**
 * Removes registry dirs left by test processes that were killed outright (no exit hook ran; the parent-death
 * signal already took the registry itself). Each dir records its owner's pid.
 */
function removeStaleDirs(): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(DIR_PREFIX)) continue;
    const dir = join(tmpdir(), name);
    let owner: number;
    try {
      owner = Number(readFileSync(join(dir, 'owner.pid'), 'utf8'));
    } catch {
      continue; // being created right now, or not ours
    }
    if (!Number.isInteger(owner) || owner <= 0 || existsSync(`/proc/${owner}`)) continue;
    rmSync(dir, { recursive: true, force: true });
  }
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

async function htpasswdFile(users: Record<string, string>, path: string): Promise<void> {
  const lines: string[] = [];
  for (const [user, password] of Object.entries(users)) {
    // docker-registry only accepts bcrypt entries.
    const { stdout } = await run('htpasswd', ['-Bbn', user, password]);
    lines.push(stdout.trim());
  }
  writeFileSync(path, lines.join('\n') + '\n', { mode: 0o600 });
}

async function certificate(dir: string): Promise<{ keyPath: string; certPath: string }> {
  const keyPath = join(dir, 'token.key');
  const certPath = join(dir, 'token.crt');
  await run('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=berth-test', '-days', '1',
    '-keyout', keyPath, '-out', certPath,
  ]);
  return { keyPath, certPath };
}

async function waitReady(url: string, child: ChildProcess, logPath: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`docker-registry exited (${child.exitCode ?? child.signalCode}): ${readFileSync(logPath, 'utf8').slice(-2000)}`);
    }
    try {
      // Any HTTP answer (200, or 401 with auth) means the server is up.
      const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      return;
    } catch {
      if (Date.now() > deadline) {
        throw new Error(`docker-registry did not answer on ${url} in 15 s: ${readFileSync(logPath, 'utf8').slice(-2000)}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

function spawnRegistry(configPath: string, logPath: string): ChildProcess {
  const log = openSync(logPath, 'a');
  try {
    // setpriv's parent-death signal kills the registry even if the test process is SIGKILLed; it survives the exec.
    const useSetpriv = existsSync('/usr/bin/setpriv');
    const [cmd, args] = useSetpriv
      ? ['/usr/bin/setpriv', ['--pdeathsig', 'KILL', REGISTRY_BIN, 'serve', configPath]]
      : [REGISTRY_BIN, ['serve', configPath]];
    // A clean environment: REGISTRY_* variables would silently override the config file.
    const child = spawn(cmd, args as string[], { stdio: ['ignore', log, log], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    child.unref();
    return child;
  } finally {
    closeSync(log);
  }
}

/**
 * Starts Debian's docker-registry on `127.0.0.1` at a free port, storage in a fresh temp dir, and waits until
 * `GET /v2/` answers. In token mode it also starts a token server (its own port) whose self-signed certificate the
 * registry trusts.
 */
export async function startRegistry(options: RegistryOptions = {}): Promise<Registry> {
  if (!existsSync(REGISTRY_BIN)) throw new Error(`${REGISTRY_BIN} is missing: run "bash test/prepare.sh"`);
  installExitHook();
  const mode = options.auth ?? 'none';
  const users = options.users ?? { berth: 'secret' };
  removeStaleDirs();
  const dir = mkdtempSync(join(tmpdir(), DIR_PREFIX));
  writeFileSync(join(dir, 'owner.pid'), String(process.pid));
  let tokenServer: TokenServer | undefined;
  try {
    let authYaml = '';
    if (mode === 'htpasswd') {
      const path = join(dir, 'htpasswd');
      await htpasswdFile(users, path);
      authYaml = `auth:\n  htpasswd:\n    realm: berth-test\n    path: ${JSON.stringify(path)}\n`;
    } else if (mode === 'token') {
      const { keyPath, certPath } = await certificate(dir);
      const { realm, ...tokenOptions } = options.token ?? {};
      tokenServer = await startTokenServer({
        ...tokenOptions,
        keyPath,
        certPath,
        users,
        service: 'berth-test-registry',
        issuer: 'berth-test-issuer',
      });
      authYaml =
        'auth:\n  token:\n' +
        `    realm: ${JSON.stringify(realm ?? tokenServer.realm)}\n` +
        `    service: ${JSON.stringify(tokenServer.service)}\n` +
        `    issuer: ${JSON.stringify(tokenServer.issuer)}\n` +
        `    rootcertbundle: ${JSON.stringify(certPath)}\n`;
    }

    // The port is free when we look; another process could take it before the registry binds, so retry.
    for (let attempt = 0; ; attempt++) {
      const port = await freePort();
      const host = `127.0.0.1:${port}`;
      const url = `http://${host}`;
      const configPath = join(dir, 'config.yml');
      const logPath = join(dir, 'registry.log');
      writeFileSync(
        configPath,
        'version: 0.1\n' +
          'log:\n  level: error\n  accesslog:\n    disabled: true\n' +
          `storage:\n  filesystem:\n    rootdirectory: ${JSON.stringify(join(dir, 'data'))}\n  delete:\n    enabled: true\n` +
          '  maintenance:\n    uploadpurging:\n      enabled: false\n' +
          `http:\n  addr: ${JSON.stringify(host)}\n  secret: ${JSON.stringify(randomBytes(16).toString('hex'))}\n` +
          authYaml,
      );
      writeFileSync(logPath, '');
      const child = spawnRegistry(configPath, logPath);
      const entry = { child, dir };
      live.add(entry);
      try {
        await waitReady(url, child, logPath);
      } catch (error) {
        live.delete(entry);
        child.kill('SIGKILL');
        if (attempt < 3 && /address already in use/.test(String(error))) continue;
        throw error;
      }
      let stopped: Promise<void> | undefined;
      const stop = (): Promise<void> =>
        (stopped ??= (async () => {
          if (child.exitCode === null && child.signalCode === null) {
            const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
            child.kill('SIGTERM');
            const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
            await exited;
            clearTimeout(timer);
          }
          live.delete(entry);
          await tokenServer?.stop();
          rmSync(dir, { recursive: true, force: true });
        })());
      const registry: Registry = { host, url, dir, users, log: () => readFileSync(logPath, 'utf8'), stop };
      if (tokenServer) registry.tokenServer = tokenServer;
      return registry;
    }
  } catch (error) {
    await tokenServer?.stop();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/** Options of {@link pushBusybox}. */
export interface PushOptions {
  /** The tag to push (default `latest`). */
  tag?: string;
  /** Credentials for the push (skopeo's `--dest-creds`). */
  credentials?: { username: string; password: string };
  /** A bearer token for the push (skopeo's `--dest-registry-token`), so skopeo never contacts the token realm. */
  registryToken?: string;
}

/**
 * Builds a tiny real image with umoci (busybox-static as /bin/busybox, its applets as symlinks, Cmd `sh`) and
 * pushes it to `registry` as `name:tag` with skopeo. Returns the pushed reference and its manifest digest.
 */
export async function pushBusybox(
  registry: Pick<Registry, 'host'> | string,
  name: string,
  options: PushOptions = {},
): Promise<{ reference: string; digest: string }> {
  const host = typeof registry === 'string' ? registry : registry.host;
  const tag = options.tag ?? 'latest';
  const dir = mkdtempSync(join(tmpdir(), 'berth-image-'));
  try {
    const layout = join(dir, 'oci');
    const image = `${layout}:${tag}`;
    const bundle = join(dir, 'bundle');
    await run('umoci', ['init', '--layout', layout]);
    await run('umoci', ['new', '--image', image]);
    await run('umoci', ['unpack', '--image', image, bundle]);
    const rootfs = join(bundle, 'rootfs');
    mkdirSync(join(rootfs, 'bin'), { recursive: true });
    copyFileSync(BUSYBOX_BIN, join(rootfs, 'bin', 'busybox'));
    const { stdout } = await run(BUSYBOX_BIN, ['--list']);
    for (const applet of stdout.split('\n')) {
      if (applet !== '' && applet !== 'busybox') symlinkSync('busybox', join(rootfs, 'bin', applet));
    }
    await run('umoci', ['repack', '--image', image, bundle]);
    await run('umoci', ['config', '--image', image, '--config.cmd', 'sh']);
    const digestFile = join(dir, 'digest');
    const reference = `${host}/${name}:${tag}`;
    const args = ['copy', '--insecure-policy', '--quiet', '--dest-tls-verify=false', '--digestfile', digestFile];
    if (options.registryToken) args.push('--dest-registry-token', options.registryToken);
    if (options.credentials) args.push('--dest-creds', `${options.credentials.username}:${options.credentials.password}`);
    args.push(`oci:${image}`, `docker://${reference}`);
    await run('skopeo', args, { env: { ...process.env, REGISTRY_AUTH_FILE: join(dir, 'auth.json') } });
    return { reference, digest: readFileSync(digestFile, 'utf8').trim() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Temp dirs of registries still running (for leak checks in tests). */
export function liveRegistries(): string[] {
  return [...live].map((r) => r.dir);
}
