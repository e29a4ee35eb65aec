// Registry authentication: challenge parsing, Docker config credentials (files and a real credential helper
// program), and the token and Basic flows against Debian's docker-registry with a test token server.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AbortError, BerthError } from '../lib/errors.js';
import {
  DOCKER_HUB_AUTH_KEY,
  RegistryAuthenticator,
  dockerConfigCredentials,
  isLoopbackHost,
  parseChallenges,
  type Credentials,
} from '../lib/image/auth.js';
import { CredentialHelperError, DockerConfigError, RegistryAuthError } from '../lib/image/auth-errors.js';
import { childPids } from './helpers/env.js';
import { liveRegistries, pushBusybox, startRegistry, type Registry } from './helpers/registry.js';

const MANIFEST_ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';
const USER = { username: 'berth', password: 'secret' };

/** Every registry this file started, checked for cleanup at the end. */
const started: Registry[] = [];
async function registry(options: Parameters<typeof startRegistry>[0]): Promise<Registry> {
  const r = await startRegistry(options);
  started.push(r);
  return r;
}

afterAll(async () => {
  for (const r of started) await r.stop();
  expect(liveRegistries()).toEqual([]);
  for (const r of started) expect(existsSync(r.dir)).toBe(false);
  expect(childPids()).toEqual([]);
});

/** GET a manifest the way a registry client would: cached authorization first, one authorize() on a 401. */
async function getManifest(
  reg: Registry,
  authn: RegistryAuthenticator,
  name: string,
  tag = 'latest',
  scope: string | string[] = `repository:${name}:pull`,
): Promise<{ status: number; challenged: boolean; body: string }> {
  const url = `${reg.url}/v2/${name}/manifests/${tag}`;
  const get = (authorization: string | undefined) =>
    fetch(url, { headers: { accept: MANIFEST_ACCEPT, ...(authorization ? { authorization } : {}) } });
  let authorization = authn.cachedAuthorization(scope);
  let res = await get(authorization);
  let challenged = false;
  if (res.status === 401) {
    challenged = true;
    const challenge = res.headers.get('www-authenticate') ?? '';
    await res.body?.cancel();
    authorization = await authn.authorize(challenge, scope, undefined, authorization);
    res = await get(authorization);
    if (res.status === 401) {
      // A second 401 hands the rejected value back, which turns into a clear error for Basic credentials.
      const again = res.headers.get('www-authenticate') ?? '';
      await res.body?.cancel();
      await authn.authorize(again, scope, undefined, authorization);
    }
  }
  return { status: res.status, challenged, body: await res.text() };
}

/** The challenge a registry answers to an unauthenticated request. */
async function challengeOf(reg: Registry, path: string): Promise<string> {
  const res = await fetch(`${reg.url}${path}`);
  await res.body?.cancel();
  expect(res.status).toBe(401);
  return res.headers.get('www-authenticate') ?? '';
}

describe('parseChallenges', () => {
  it('parses one Bearer challenge', () => {
    expect(
      parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"'),
    ).toEqual([
      {
        scheme: 'bearer',
        params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull' },
      },
    ]);
  });

  it('splits several challenges, keeping commas inside quotes', () => {
    expect(
      parseChallenges('Bearer realm="https://a/token",service="reg",scope="repository:x:pull,push", Basic realm="r"'),
    ).toEqual([
      { scheme: 'bearer', params: { realm: 'https://a/token', service: 'reg', scope: 'repository:x:pull,push' } },
      { scheme: 'basic', params: { realm: 'r' } },
    ]);
  });

  it('is case-insensitive in schemes and parameter names, not in values', () => {
    expect(parseChallenges('BEARER Realm="https://A/Token", SERVICE=Reg')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://A/Token', service: 'Reg' } },
    ]);
  });

  it('unescapes quoted strings', () => {
    const [c] = parseChallenges(String.raw`Basic realm="say \"hi\", a\\b \x"`);
    expect(c?.params.realm).toBe('say "hi", a\\b x');
  });

  it('accepts bare values, blanks around "=", stray commas and an unterminated quote', () => {
    expect(parseChallenges(' , Basic realm=https://r/x , , Bearer  realm = "a" ,service= "b",error="unterminated')).toEqual([
      { scheme: 'basic', params: { realm: 'https://r/x' } },
      { scheme: 'bearer', params: { realm: 'a', service: 'b', error: 'unterminated' } },
    ]);
  });

  it('reads token68 challenges and schemes without parameters', () => {
    expect(parseChallenges('Negotiate abc+/==, NTLM, Basic realm="x"')).toEqual([
      { scheme: 'negotiate', params: {}, token68: 'abc+/==' },
      { scheme: 'ntlm', params: {} },
      { scheme: 'basic', params: { realm: 'x' } },
    ]);
  });

  it('keeps the first of duplicate parameters and cannot be used to touch prototypes', () => {
    const [c] = parseChallenges('Bearer realm="first", realm="second", __proto__="x", constructor=y');
    expect(c?.params.realm).toBe('first');
    expect(Object.getPrototypeOf(c?.params)).toBe(Object.prototype);
    expect(Object.hasOwn(c!.params, '__proto__')).toBe(true);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });

  it('returns nothing for empty or junk headers', () => {
    expect(parseChallenges('')).toEqual([]);
    expect(parseChallenges('  ,, ')).toEqual([]);
    expect(parseChallenges('="x", realm=y')).toEqual([]);
  });

  it('reads the challenges docker-registry sends', async () => {
    const reg = await registry({ auth: 'token' });
    const [c, ...rest] = parseChallenges(await challengeOf(reg, '/v2/team/app/manifests/latest'));
    expect(rest).toEqual([]);
    expect(c).toEqual({
      scheme: 'bearer',
      params: { realm: reg.tokenServer!.realm, service: 'berth-test-registry', scope: 'repository:team/app:pull' },
    });
  });
});

describe('isLoopbackHost', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.8.9.10', true],
    ['[::1]', true],
    ['localhost', true],
    ['registry.localhost', true],
    ['[::ffff:7f00:1]', true],
    ['10.0.0.1', false],
    ['registry.example.com', false],
    ['localhost.example.com', false],
    ['[::2]', false],
  ])('%s → %s', (host, loopback) => {
    expect(isLoopbackHost(host)).toBe(loopback);
  });
});

describe('dockerConfigCredentials', () => {
  let dir: string;
  let bin: string;
  let helperLog: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-auth-config-'));
    bin = join(dir, 'bin');
    mkdirSync(bin);
    helperLog = join(dir, 'helper.log');
    // A real helper program speaking the credential-helper protocol: server URL on stdin, JSON on stdout.
    writeFileSync(
      join(bin, 'docker-credential-berthtest'),
      `#!/bin/sh
[ "$1" = get ] || { echo "unexpected action $1" >&2; exit 3; }
read -r server || true
printf '%s\\n' "$server" >> "$BERTH_HELPER_LOG"
case "$server" in
  https://index.docker.io/v1/) echo '{"ServerURL":"https://index.docker.io/v1/","Username":"hubuser","Secret":"hubpass"}' ;;
  helper.example.com) echo '{"ServerURL":"helper.example.com","Username":"alice","Secret":"s3cret"}' ;;
  token.example.com) echo '{"ServerURL":"token.example.com","Username":"<token>","Secret":"identity-123"}' ;;
  garbage.example.com) echo 'not json' ;;
  fail.example.com) echo 'keyring is locked' >&2; exit 2 ;;
  slow.example.com) exec sleep 60 ;;
  *) echo 'credentials not found in native keychain'; exit 1 ;;
esac
`,
    );
    chmodSync(join(bin, 'docker-credential-berthtest'), 0o755);
    env = { PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`, HOME: join(dir, 'home'), BERTH_HELPER_LOG: helperLog };
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  let n = 0;
  const config = (content: unknown): string => {
    const path = join(dir, `config-${n++}.json`);
    writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
    return path;
  };
  const b64 = (s: string) => Buffer.from(s).toString('base64');

  it('returns undefined without a config file', async () => {
    expect(await dockerConfigCredentials('registry.example.com', { env })).toBeUndefined();
    expect(await dockerConfigCredentials('registry.example.com', { configPath: join(dir, 'missing.json') })).toBeUndefined();
  });

  it('reads ~/.docker/config.json, or $DOCKER_CONFIG/config.json', async () => {
    mkdirSync(join(dir, 'home', '.docker'), { recursive: true });
    writeFileSync(join(dir, 'home', '.docker', 'config.json'), JSON.stringify({ auths: { 'a.example.com': { auth: b64('home:pw') } } }));
    mkdirSync(join(dir, 'dc'));
    writeFileSync(join(dir, 'dc', 'config.json'), JSON.stringify({ auths: { 'a.example.com': { auth: b64('dc:pw') } } }));
    expect(await dockerConfigCredentials('a.example.com', { env })).toEqual({ username: 'home', password: 'pw' });
    expect(await dockerConfigCredentials('a.example.com', { env: { ...env, DOCKER_CONFIG: join(dir, 'dc') } })).toEqual({
      username: 'dc',
      password: 'pw',
    });
  });

  it('decodes auths entries: base64 auth (passwords may hold colons), username/password, identitytoken', async () => {
    const configPath = config({
      auths: {
        'localhost:5000': { auth: b64('user:pa:ss') },
        'plain.example.com': { username: 'bob', password: 'pw' },
        'idt.example.com': { auth: b64('ignored:x'), identitytoken: 'refresh-abc' },
        'empty.example.com': {},
      },
    });
    expect(await dockerConfigCredentials('localhost:5000', { configPath })).toEqual({ username: 'user', password: 'pa:ss' });
    expect(await dockerConfigCredentials('plain.example.com', { configPath })).toEqual({ username: 'bob', password: 'pw' });
    expect(await dockerConfigCredentials('idt.example.com', { configPath })).toEqual({ identityToken: 'refresh-abc' });
    expect(await dockerConfigCredentials('empty.example.com', { configPath })).toBeUndefined();
    expect(await dockerConfigCredentials('other.example.com', { configPath })).toBeUndefined();
    expect(await dockerConfigCredentials('localhost:5001', { configPath })).toBeUndefined();
  });

  it('matches URL-form keys by host, and maps docker.io to https://index.docker.io/v1/', async () => {
    const configPath = config({
      auths: {
        [DOCKER_HUB_AUTH_KEY]: { auth: b64('hub:pw') },
        'https://reg.example.com/v2/': { auth: b64('url:pw') },
        'http://Mixed.Example.com:8443': { auth: b64('mixed:pw') },
      },
    });
    for (const name of ['docker.io', 'index.docker.io', 'registry-1.docker.io', DOCKER_HUB_AUTH_KEY]) {
      expect(await dockerConfigCredentials(name, { configPath })).toEqual({ username: 'hub', password: 'pw' });
    }
    expect(await dockerConfigCredentials('reg.example.com', { configPath })).toEqual({ username: 'url', password: 'pw' });
    expect(await dockerConfigCredentials('mixed.example.com:8443', { configPath })).toEqual({ username: 'mixed', password: 'pw' });
    expect(await dockerConfigCredentials('mixed.example.com', { configPath })).toBeUndefined();
    // The other direction: a config keyed "docker.io" serves Docker Hub too.
    const short = config({ auths: { 'docker.io': { username: 'short', password: 'pw' } } });
    expect(await dockerConfigCredentials('registry-1.docker.io', { configPath: short })).toEqual({ username: 'short', password: 'pw' });
  });

  it('rejects broken config files with DockerConfigError', async () => {
    const bad = [config('{not json'), config({ auths: [] }), config({ credsStore: 7 }), config({ auths: { 'x.io': { auth: b64('nocolon') } } })];
    for (const configPath of bad) {
      const error = await dockerConfigCredentials('x.io', { configPath }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DockerConfigError);
      expect(error).toMatchObject({ code: 'ERR_DOCKER_CONFIG', path: configPath });
    }
  });

  it('runs credHelpers[registry] with the server URL on stdin', async () => {
    writeFileSync(helperLog, '');
    const configPath = config({
      credHelpers: { 'helper.example.com': 'berthtest', 'token.example.com': 'berthtest', 'docker.io': 'berthtest' },
      auths: { 'helper.example.com': { auth: b64('fromfile:pw') } },
    });
    expect(await dockerConfigCredentials('helper.example.com', { configPath, env })).toEqual({ username: 'alice', password: 's3cret' });
    expect(await dockerConfigCredentials('token.example.com', { configPath, env })).toEqual({ identityToken: 'identity-123' });
    expect(await dockerConfigCredentials('docker.io', { configPath, env })).toEqual({ username: 'hubuser', password: 'hubpass' });
    expect(readFileSync(helperLog, 'utf8')).toBe('helper.example.com\ntoken.example.com\nhttps://index.docker.io/v1/\n');
  });

  it('runs credsStore for every registry, falling back to auths when the helper has nothing', async () => {
    writeFileSync(helperLog, '');
    const configPath = config({ credsStore: 'berthtest', auths: { 'unknown.example.com': { auth: b64('fallback:pw') } } });
    expect(await dockerConfigCredentials('helper.example.com', { configPath, env })).toEqual({ username: 'alice', password: 's3cret' });
    expect(await dockerConfigCredentials('unknown.example.com', { configPath, env })).toEqual({ username: 'fallback', password: 'pw' });
    expect(await dockerConfigCredentials('nothing.example.com', { configPath, env })).toBeUndefined();
    expect(readFileSync(helperLog, 'utf8')).toBe('helper.example.com\nunknown.example.com\nnothing.example.com\n');
  });

  it('explains a missing helper binary', async () => {
    const configPath = config({ credsStore: 'berth-no-such-helper' });
    const error = await dockerConfigCredentials('x.example.com', { configPath, env }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CredentialHelperError);
    expect(error).toMatchObject({ code: 'ERR_CREDENTIAL_HELPER', helper: 'docker-credential-berth-no-such-helper' });
    expect((error as Error).message).toMatch(/docker-credential-berth-no-such-helper was not found on PATH \(credsStore in .*config-\d+\.json\)/);
  });

  it('reports helper failures and garbage, and refuses helper names that are paths', async () => {
    const configPath = config({ credsStore: 'berthtest' });
    const failed = await dockerConfigCredentials('fail.example.com', { configPath, env }).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(CredentialHelperError);
    expect((failed as Error).message).toContain('keyring is locked');
    const garbage = await dockerConfigCredentials('garbage.example.com', { configPath, env }).catch((e: unknown) => e);
    expect(garbage).toBeInstanceOf(CredentialHelperError);
    const started = Date.now();
    const slow = await dockerConfigCredentials('slow.example.com', { configPath, env, helperTimeoutMs: 300 }).catch((e: unknown) => e);
    expect(slow).toBeInstanceOf(CredentialHelperError);
    expect((slow as Error).message).toContain('timed out after 300 ms');
    expect(Date.now() - started).toBeLessThan(5000);
    const traversal = config({ credHelpers: { 'x.example.com': '../../bin/sh' } });
    const refused = await dockerConfigCredentials('x.example.com', { configPath: traversal, env }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(CredentialHelperError);
    expect((refused as Error).message).toContain('invalid credential helper name');
  });
});

describe('RegistryAuthenticator with a token server (anonymous pull, users push)', () => {
  let reg: Registry;
  beforeAll(async () => {
    reg = await registry({ auth: 'token' });
    await pushBusybox(reg, 'team/busybox', { credentials: USER });
    await pushBusybox(reg, 'team/other', { credentials: USER });
  });
  const tokenRequests = () => reg.tokenServer!.requests;

  it('anonymous bearer flow: 401 → token → 200', async () => {
    tokenRequests().length = 0;
    const authn = new RegistryAuthenticator({ host: reg.host });
    const result = await getManifest(reg, authn, 'team/busybox');
    expect(result).toMatchObject({ status: 200, challenged: true });
    expect(JSON.parse(result.body).layers).toHaveLength(1);
    expect(tokenRequests()).toHaveLength(1);
    expect(tokenRequests()[0]).toMatchObject({
      method: 'GET',
      service: 'berth-test-registry',
      scopes: ['repository:team/busybox:pull'],
      authorization: undefined,
      account: undefined,
      userAgent: 'berth',
      status: 200,
    });
  });

  it('sends Basic credentials to the token server and gets push access', async () => {
    tokenRequests().length = 0;
    const credentials = vi.fn(async (): Promise<Credentials> => USER);
    const authn = new RegistryAuthenticator({ host: reg.host, credentials, userAgent: 'berth-test/1' });
    const scope = 'repository:team/busybox:pull,push';
    expect((await getManifest(reg, authn, 'team/busybox', 'latest', scope)).status).toBe(200);
    const [request] = tokenRequests();
    expect(request).toMatchObject({
      basic: USER,
      account: 'berth',
      user: 'berth',
      userAgent: 'berth-test/1',
      scopes: [scope],
      granted: [{ type: 'repository', name: 'team/busybox', actions: ['pull', 'push'] }],
    });
    // The token really carries push: the registry lets it start an upload.
    const upload = await fetch(`${reg.url}/v2/team/busybox/blobs/uploads/`, {
      method: 'POST',
      headers: { authorization: authn.cachedAuthorization(scope)! },
    });
    await upload.body?.cancel();
    expect(upload.status).toBe(202);
    expect(credentials).toHaveBeenCalledTimes(1);
  });

  it('asks for several scopes at once (scope=a&scope=b) and for the scope the challenge names', async () => {
    tokenRequests().length = 0;
    const authn = new RegistryAuthenticator({ host: reg.host, credentials: async () => USER });
    const challenge = await challengeOf(reg, '/v2/team/busybox/manifests/latest');
    const authorization = await authn.authorize(challenge, ['repository:team/other:pull']);
    expect(tokenRequests()[0]?.scopes).toEqual(['repository:team/busybox:pull', 'repository:team/other:pull']);
    expect(tokenRequests()[0]?.url).toMatch(/scope=repository%3Ateam%2Fbusybox%3Apull&scope=repository%3Ateam%2Fother%3Apull/);
    // Cached under the caller's scope.
    expect(authn.cachedAuthorization('repository:team/other:pull')).toBe(authorization);
    const res = await fetch(`${reg.url}/v2/team/other/manifests/latest`, { headers: { authorization, accept: MANIFEST_ACCEPT } });
    await res.body?.cancel();
    expect(res.status).toBe(200);
  });

  it('fails clearly on a wrong password', async () => {
    const authn = new RegistryAuthenticator({ host: reg.host, credentials: async () => ({ username: 'berth', password: 'wrong' }) });
    const error = await getManifest(reg, authn, 'team/busybox').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryAuthError);
    expect(error).toMatchObject({ code: 'ERR_REGISTRY_AUTH', status: 401, registry: reg.host });
    expect((error as Error).message).toMatch(/rejected user "berth" \(HTTP 401\).*docker login/);
  });

  it('caches tokens per scope: a second request goes straight through, one token request in all', async () => {
    tokenRequests().length = 0;
    const authn = new RegistryAuthenticator({ host: reg.host });
    expect(await getManifest(reg, authn, 'team/busybox')).toMatchObject({ status: 200, challenged: true });
    expect(await getManifest(reg, authn, 'team/busybox')).toMatchObject({ status: 200, challenged: false });
    expect(tokenRequests()).toHaveLength(1);
    // Another scope is another token.
    expect(authn.cachedAuthorization('repository:team/other:pull')).toBeUndefined();
    expect(await getManifest(reg, authn, 'team/other')).toMatchObject({ status: 200, challenged: true });
    expect(tokenRequests()).toHaveLength(2);
  });

  it('shares one token request among concurrent callers', async () => {
    tokenRequests().length = 0;
    const authn = new RegistryAuthenticator({ host: reg.host });
    const challenge = await challengeOf(reg, '/v2/team/busybox/manifests/latest');
    const all = await Promise.all(Array.from({ length: 8 }, () => authn.authorize(challenge, 'repository:team/busybox:pull')));
    expect(new Set(all).size).toBe(1);
    expect(tokenRequests()).toHaveLength(1);
  });

  it('stops reusing a token shortly before it expires (60 s minimum lifetime)', async () => {
    const short = await registry({ auth: 'token', token: { expiresIn: 5 } });
    try {
      const authn = new RegistryAuthenticator({ host: short.host });
      const challenge = await challengeOf(short, '/v2/x/manifests/latest');
      vi.useFakeTimers({ toFake: ['Date'] });
      const authorization = await authn.authorize(challenge, 'repository:x:pull');
      // expires_in 5 is raised to 60: reused at 45 s, not at 55 s (10% margin).
      vi.setSystemTime(Date.now() + 45_000);
      expect(authn.cachedAuthorization('repository:x:pull')).toBe(authorization);
      vi.setSystemTime(Date.now() + 10_000);
      expect(authn.cachedAuthorization('repository:x:pull')).toBeUndefined();
    } finally {
      vi.useRealTimers();
      await short.stop();
    }
  });

  it('drops a token the registry rejected and asks for a new one', async () => {
    tokenRequests().length = 0;
    const authn = new RegistryAuthenticator({ host: reg.host });
    const challenge = await challengeOf(reg, '/v2/team/busybox/manifests/latest');
    const first = await authn.authorize(challenge, 'repository:team/busybox:pull');
    const second = await authn.authorize(challenge, 'repository:team/busybox:pull', undefined, first);
    expect(tokenRequests()).toHaveLength(2);
    expect(authn.cachedAuthorization('repository:team/busybox:pull')).toBe(second);
  });

  it('honors AbortSignal', async () => {
    const authn = new RegistryAuthenticator({ host: reg.host });
    const challenge = await challengeOf(reg, '/v2/team/busybox/manifests/latest');
    await expect(authn.authorize(challenge, 'repository:team/busybox:pull', AbortSignal.abort())).rejects.toBeInstanceOf(AbortError);

    // A token server that accepts the connection and never answers.
    const sockets: Socket[] = [];
    const hang = createServer(() => undefined);
    hang.on('connection', (s) => sockets.push(s));
    await new Promise<void>((resolve) => hang.listen(0, '127.0.0.1', resolve));
    try {
      const port = (hang.address() as AddressInfo).port;
      const controller = new AbortController();
      const pending = authn.authorize(`Bearer realm="http://127.0.0.1:${port}/token",service="s"`, 'repository:a:pull', controller.signal);
      setTimeout(() => controller.abort(), 100);
      await expect(pending).rejects.toBeInstanceOf(AbortError);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => hang.close(() => resolve()));
    }
  });

  it('rejects challenges it cannot answer', async () => {
    const authn = new RegistryAuthenticator({ host: reg.host });
    await expect(authn.authorize('Negotiate abc', 'repository:a:pull')).rejects.toThrow(/unsupported authentication \(negotiate\)/);
    await expect(authn.authorize('', 'repository:a:pull')).rejects.toThrow(/without a usable WWW-Authenticate/);
    await expect(authn.authorize('Bearer service="x"', 'repository:a:pull')).rejects.toThrow(/without a realm/);
    await expect(authn.authorize('Bearer realm="file:///etc/passwd"', 'repository:a:pull')).rejects.toThrow(/not HTTP/);
  });
});

describe('RegistryAuthenticator with a stricter token server', () => {
  let reg: Registry;
  beforeAll(async () => {
    reg = await registry({
      auth: 'token',
      token: { anonymous: 'deny', keyHint: 'x5c', tokenField: 'access_token', refreshTokens: { 'identity-abc': 'berth' } },
    });
    await pushBusybox(reg, 'private/busybox', { credentials: USER });
  });

  it('reports refused anonymous access', async () => {
    const authn = new RegistryAuthenticator({ host: reg.host });
    const error = await getManifest(reg, authn, 'private/busybox').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryAuthError);
    expect((error as Error).message).toMatch(/refused anonymous access to repository:private\/busybox:pull \(HTTP 401\)/);
  });

  it('uses access_token and x5c-signed tokens', async () => {
    const authn = new RegistryAuthenticator({ host: reg.host, credentials: async () => USER });
    expect((await getManifest(reg, authn, 'private/busybox')).status).toBe(200);
  });

  it('exchanges an identity token with the OAuth2 refresh-token grant (POST)', async () => {
    reg.tokenServer!.requests.length = 0;
    const authn = new RegistryAuthenticator({ host: reg.host, credentials: async () => ({ identityToken: 'identity-abc' }) });
    expect((await getManifest(reg, authn, 'private/busybox')).status).toBe(200);
    expect(reg.tokenServer!.requests).toHaveLength(1);
    expect(reg.tokenServer!.requests[0]).toMatchObject({
      method: 'POST',
      authorization: undefined,
      user: 'berth',
      form: {
        grant_type: 'refresh_token',
        refresh_token: 'identity-abc',
        client_id: 'berth',
        service: 'berth-test-registry',
        scope: 'repository:private/busybox:pull',
      },
    });
    const bad = new RegistryAuthenticator({ host: reg.host, credentials: async () => ({ identityToken: 'stolen' }) });
    await expect(getManifest(reg, bad, 'private/busybox')).rejects.toThrow(/rejected the identity token \(HTTP 401\)/);
  });
});

describe('RegistryAuthenticator with htpasswd (Basic)', () => {
  let reg: Registry;
  beforeAll(async () => {
    reg = await registry({ auth: 'htpasswd', users: { berth: 'secret', other: 'pw2' } });
    await pushBusybox(reg, 'basic/busybox', { credentials: USER });
  });

  it('answers the Basic challenge with the credentials and reuses them', async () => {
    const challenge = await challengeOf(reg, '/v2/basic/busybox/manifests/latest');
    expect(parseChallenges(challenge)).toEqual([{ scheme: 'basic', params: { realm: 'berth-test' } }]);
    const authn = new RegistryAuthenticator({ host: reg.host, credentials: async () => USER });
    expect(await getManifest(reg, authn, 'basic/busybox')).toMatchObject({ status: 200, challenged: true });
    expect(authn.cachedAuthorization('repository:basic/busybox:pull')).toBe(`Basic ${Buffer.from('berth:secret').toString('base64')}`);
    expect(await getManifest(reg, authn, 'basic/busybox')).toMatchObject({ status: 200, challenged: false });
  });

  it('fails clearly on a wrong password', async () => {
    const authn = new RegistryAuthenticator({ host: reg.host, credentials: async () => ({ username: 'other', password: 'wrong' }) });
    const error = await getManifest(reg, authn, 'basic/busybox').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryAuthError);
    expect(error).toBeInstanceOf(BerthError);
    expect((error as Error).message).toBe(
      `registry ${reg.host} rejected the password for user "other" (realm "berth-test"): check the credentials (docker login ${reg.host})`,
    );
    expect(authn.cachedAuthorization('')).toBeUndefined();
  });

  it('fails clearly without credentials, or with only an identity token', async () => {
    const none = new RegistryAuthenticator({ host: reg.host });
    await expect(getManifest(reg, none, 'basic/busybox')).rejects.toThrow(/requires a username and password .*docker login/);
    const token = new RegistryAuthenticator({ host: reg.host, credentials: async () => ({ identityToken: 't' }) });
    await expect(getManifest(reg, token, 'basic/busybox')).rejects.toThrow(/only an identity token/);
  });
});

describe('where credentials may go', () => {
  const REMOTE = 'token.berth.invalid';
  let reg: Registry;
  beforeAll(async () => {
    // The registry advertises a realm on a non-loopback host over plain HTTP. Nothing may leave this machine, so
    // fetches to that host are rerouted to the real token server by the fetch passed to the authenticator.
    reg = await registry({ auth: 'token', token: { realm: `http://${REMOTE}/token` } });
    // skopeo would follow the realm (and ask DNS about it): hand it a push token from the token server instead.
    const tokenUrl = `${reg.tokenServer!.realm}?service=berth-test-registry&scope=repository:remote/busybox:pull,push`;
    const auth = `Basic ${Buffer.from('berth:secret').toString('base64')}`;
    const { token } = (await (await fetch(tokenUrl, { headers: { authorization: auth } })).json()) as { token: string };
    await pushBusybox(reg, 'remote/busybox', { registryToken: token });
    reg.tokenServer!.requests.length = 0;
  });
  const calls: string[] = [];
  const reroute: typeof fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    calls.push(url.href);
    if (url.hostname === REMOTE) url.host = reg.tokenServer!.host;
    return fetch(url, init);
  };

  it('refuses to send credentials to a plain-HTTP realm that is not loopback', async () => {
    calls.length = 0;
    const challenge = await challengeOf(reg, '/v2/remote/busybox/manifests/latest');
    const authn = new RegistryAuthenticator({ host: reg.host, credentials: async () => USER, fetch: reroute });
    const error = await authn.authorize(challenge, 'repository:remote/busybox:pull').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryAuthError);
    expect((error as Error).message).toMatch(
      new RegExp(`refusing to send credentials for ${reg.host} to its token server http://${REMOTE} over plain HTTP.*HTTPS.*insecure`),
    );
    expect(calls).toEqual([]);
    const identity = new RegistryAuthenticator({ host: reg.host, credentials: async () => ({ identityToken: 'x' }), fetch: reroute });
    await expect(identity.authorize(challenge, 'repository:remote/busybox:pull')).rejects.toThrow(/over plain HTTP/);
    expect(calls).toEqual([]);
  });

  it('goes there anonymously, or with credentials when the registry is marked insecure', async () => {
    reg.tokenServer!.requests.length = 0;
    const anonymous = new RegistryAuthenticator({ host: reg.host, fetch: reroute });
    expect((await getManifest(reg, anonymous, 'remote/busybox')).status).toBe(200);
    const insecure = new RegistryAuthenticator({ host: reg.host, credentials: async () => USER, fetch: reroute, insecure: true });
    expect((await getManifest(reg, insecure, 'remote/busybox')).status).toBe(200);
    expect(reg.tokenServer!.requests.map((r) => r.user)).toEqual([undefined, 'berth']);
  });

  describe('redirects from the token realm', () => {
    let redirector: Server;
    let redirectUrl: string;
    beforeAll(async () => {
      // A realm on another origin (another port) that sends every request on to the real token server.
      redirector = createServer((req, res) => {
        res.writeHead(307, { location: `${reg.tokenServer!.realm.replace(/\/token$/, '')}${req.url ?? ''}` });
        res.end();
      });
      await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
      redirectUrl = `http://127.0.0.1:${(redirector.address() as AddressInfo).port}/token`;
    });
    afterAll(async () => {
      redirector.closeAllConnections();
      await new Promise<void>((resolve) => redirector.close(() => resolve()));
    });

    it('never forwards credentials to another origin', async () => {
      reg.tokenServer!.requests.length = 0;
      const authn = new RegistryAuthenticator({ host: reg.host, credentials: async () => USER });
      await authn.authorize(`Bearer realm="${redirectUrl}",service="berth-test-registry"`, 'repository:remote/busybox:pull');
      expect(reg.tokenServer!.requests).toHaveLength(1);
      expect(reg.tokenServer!.requests[0]).toMatchObject({ authorization: undefined, user: undefined });
      // The query (service, scope, account) still arrives: only the secret is withheld.
      expect(reg.tokenServer!.requests[0]?.scopes).toEqual(['repository:remote/busybox:pull']);

      const identity = new RegistryAuthenticator({ host: reg.host, credentials: async () => ({ identityToken: 'x' }) });
      await expect(
        identity.authorize(`Bearer realm="${redirectUrl}",service="berth-test-registry"`, 'repository:remote/busybox:pull'),
      ).rejects.toThrow(/refusing to send the token to another host/);
      expect(reg.tokenServer!.requests).toHaveLength(1);
    });
  });
});
