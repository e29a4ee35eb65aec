// The registry client against Debian's docker-registry: manifests and blobs, auth modes, mirrors, redirects that
// drop credentials, retries on 5xx and dropped connections.
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseManifest } from '../lib/image/manifest.js';
import { endpointsFor, isLoopback, RegistryClient, RegistryError } from '../lib/image/registry.js';
import { proxy } from './helpers/proxy.js';
import { pushBusybox, startRegistry, type Registry } from './helpers/registry.js';

let plain: Registry;
let basic: Registry;
let token: Registry;
let pushed: { reference: string; digest: string };
const creds = { username: 'berth', password: 'secret' };

beforeAll(async () => {
  [plain, basic, token] = await Promise.all([
    startRegistry(),
    startRegistry({ auth: 'htpasswd' }),
    startRegistry({ auth: 'token', token: { anonymous: 'none' } }),
  ]);
  pushed = await pushBusybox(plain, 'library/busybox');
  await pushBusybox(basic, 'team/app', { credentials: creds });
  // A push token straight from the token server (skopeo is not told the realm).
  const ts = token.tokenServer!;
  const res = await fetch(`${ts.realm}?service=${encodeURIComponent(ts.service)}&scope=repository:team/app:push,pull`, {
    headers: { authorization: `Basic ${Buffer.from('berth:secret').toString('base64')}` },
  });
  const body = (await res.json()) as { token?: string; access_token?: string };
  await pushBusybox(token, 'team/app', { registryToken: body.token ?? body.access_token! });
}, 120_000);
afterAll(async () => {
  await Promise.all([plain?.stop(), basic?.stop(), token?.stop()]);
});

async function drain(body: AsyncIterable<Uint8Array>): Promise<{ size: number; digest: string }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of body) {
    h.update(chunk);
    size += chunk.length;
  }
  return { size, digest: `sha256:${h.digest('hex')}` };
}

describe('endpoints', () => {
  it('uses Docker Hub\'s API host, mirrors first, and plain HTTP only for loopback or insecure registries', () => {
    expect(endpointsFor('docker.io').map((e) => e.base)).toEqual(['https://registry-1.docker.io']);
    expect(endpointsFor('docker.io', { mirrors: ['http://127.0.0.1:5000'] }).map((e) => e.base)).toEqual(['http://127.0.0.1:5000', 'https://registry-1.docker.io']);
    expect(endpointsFor('localhost:5000')[0]!.base).toBe('http://localhost:5000');
    expect(endpointsFor('registry.example.com')[0]!.base).toBe('https://registry.example.com');
    expect(endpointsFor('registry.example.com', { insecureRegistries: ['registry.example.com'] })[0]!.base).toBe('http://registry.example.com');
    expect(isLoopback('127.0.0.1:5000')).toBe(true);
    expect(isLoopback('[::1]:5000')).toBe(true);
    expect(isLoopback('10.0.0.1:5000')).toBe(false);
  });
});

describe('pulling from a real registry', () => {
  it('fetches a manifest by tag and by digest, and its blobs', async () => {
    const client = new RegistryClient(plain.host);
    const m = await client.getManifest('library/busybox', 'latest');
    expect(m.digest).toBe(pushed.digest);
    const parsed = parseManifest(m.bytes, m.mediaType);
    expect(parsed.kind).toBe('manifest');
    const byDigest = await client.getManifest('library/busybox', pushed.digest);
    expect(byDigest.bytes.equals(m.bytes)).toBe(true);
    if (parsed.kind !== 'manifest') return;
    const layer = parsed.manifest.layers[0]!;
    const blob = await client.blob('library/busybox', layer.digest);
    expect(await drain(blob.body)).toEqual({ size: layer.size, digest: layer.digest });
  });

  it('reports a missing image clearly', async () => {
    const client = new RegistryClient(plain.host);
    const err = await client.getManifest('library/nope', 'latest').catch((e) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.status).toBe(404);
    expect(err.message).toMatch(/not found.*MANIFEST_UNKNOWN|not found.*NAME_UNKNOWN/);
  });

  it('authenticates with Basic credentials (htpasswd) and fails clearly without them', async () => {
    const ok = new RegistryClient(basic.host, { credentials: async () => creds });
    expect((await ok.getManifest('team/app', 'latest')).digest).toMatch(/^sha256:/);
    const anonymous = new RegistryClient(basic.host, { credentials: async () => undefined });
    await expect(anonymous.getManifest('team/app', 'latest')).rejects.toThrow(/credentials|auth/i);
    const wrong = new RegistryClient(basic.host, { credentials: async () => ({ username: 'berth', password: 'nope' }) });
    await expect(wrong.getManifest('team/app', 'latest')).rejects.toThrow(/rejected|denied|credentials/i);
  });

  it('gets a token from the token server and reuses it', async () => {
    const client = new RegistryClient(token.host, { credentials: async () => creds });
    const before = token.tokenServer!.requests.length;
    const m = await client.getManifest('team/app', 'latest');
    const parsed = parseManifest(m.bytes, m.mediaType);
    if (parsed.kind === 'manifest') await drain((await client.blob('team/app', parsed.manifest.config.digest)).body);
    expect(token.tokenServer!.requests.length - before).toBe(1);
  });
});

describe('resilience', () => {
  it('retries 5xx answers and succeeds', async () => {
    const p = await proxy(plain.url, ({ n }) => (n < 2 ? 'fail' : 'pass'));
    try {
      const client = new RegistryClient(p.host);
      expect((await client.getManifest('library/busybox', 'latest')).digest).toBe(pushed.digest);
    } finally {
      await p.close();
    }
  });

  it('gives up after the attempts with the registry\'s message', async () => {
    const p = await proxy(plain.url, () => 'fail');
    try {
      const client = new RegistryClient(p.host, { attempts: 2 });
      await expect(client.getManifest('library/busybox', 'latest')).rejects.toThrow(/HTTP 503.*try later/);
    } finally {
      await p.close();
    }
  });

  it('a connection cut mid-blob ends the stream with an error (the caller retries)', async () => {
    const m = parseManifest((await new RegistryClient(plain.host).getManifest('library/busybox', 'latest')).bytes);
    if (m.kind !== 'manifest') throw new Error('expected a manifest');
    const layer = m.manifest.layers[0]!;
    const p = await proxy(plain.url, ({ url }) => (url.includes('/blobs/') ? 'cut' : 'pass'));
    try {
      const blob = await new RegistryClient(p.host).blob('library/busybox', layer.digest);
      await expect(drain(blob.body)).rejects.toThrow();
    } finally {
      await p.close();
    }
  });

  it('follows a blob redirect to another host without sending the Authorization header there', async () => {
    const m = parseManifest((await new RegistryClient(basic.host, { credentials: async () => creds }).getManifest('team/app', 'latest')).bytes);
    if (m.kind !== 'manifest') throw new Error('expected a manifest');
    const layer = m.manifest.layers[0]!;
    // "CDN": another host (another port) that serves the blob from the registry with the real credentials itself.
    const cdn = await proxy(basic.url, () => 'pass');
    // Like a real registry, the front redirects only an authorized request (an anonymous one gets its 401).
    const front = await proxy(basic.url, ({ url, auth }) => (url.includes('/blobs/') && auth ? { redirect: `${cdn.url}${url}` } : 'pass'));
    try {
      const client = new RegistryClient(front.host, { credentials: async () => creds });
      // The CDN's 401 is not answered with our credentials: a plain error.
      await expect(client.blob('team/app', layer.digest)).rejects.toThrow(/access denied by the host it redirected to/);
      expect(front.seen.some((s) => s.url.includes('/blobs/') && s.auth)).toBe(true);
      expect(cdn.seen.filter((s) => s.auth !== undefined)).toEqual([]);
    } finally {
      await cdn.close();
      await front.close();
    }
  });

  it('checks /v2/ once per endpoint before the first request, and names a server that is not a registry', async () => {
    const p = await proxy(plain.url, () => 'pass');
    try {
      const client = new RegistryClient(p.host);
      const m = parseManifest((await client.getManifest('library/busybox', 'latest')).bytes);
      if (m.kind !== 'manifest') throw new Error('expected a manifest');
      await Promise.all([client.getManifest('library/busybox', 'latest'), drain((await client.blob('library/busybox', m.manifest.config.digest)).body)]);
      expect(p.seen.map((r) => r.url).filter((u) => u === '/v2/')).toEqual(['/v2/']);
      expect(p.seen[0]!.url).toBe('/v2/');
    } finally {
      await p.close();
    }
    // A web server that is not a registry: 404 on /v2/.
    const web = createServer((_req, res) => res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>Not Found</h1>'));
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
    try {
      const host = `127.0.0.1:${(web.address() as AddressInfo).port}`;
      const err = await new RegistryClient(host).getManifest('library/busybox', 'latest').catch((e) => e);
      expect(err).toBeInstanceOf(RegistryError);
      expect(err.message).toMatch(/is not a container registry \(GET \/v2\/ answered HTTP 404\)/);
    } finally {
      await new Promise<void>((r) => web.close(() => r()));
    }
  });

  it('falls back from a failing mirror to the next endpoint', async () => {
    // docker.io is not reachable here, so mirror → mirror: the first always fails, the second serves.
    const bad = await proxy(plain.url, () => 'fail');
    const good = await proxy(plain.url, () => 'pass');
    try {
      const client = new RegistryClient('docker.io', { mirrors: [bad.url, good.url], attempts: 1 });
      expect((await client.getManifest('library/busybox', 'latest')).digest).toBe(pushed.digest);
      expect(good.seen.length).toBeGreaterThan(0);
    } finally {
      await bad.close();
      await good.close();
    }
  });

  it('never downgrades an https registry to plain http through a redirect, and caps manifest size', async () => {
    const calls: string[] = [];
    const fake: typeof fetch = async (input, init) => {
      const url = String(input);
      calls.push(`${url} ${(init?.headers as Record<string, string>)?.authorization ?? ''}`);
      if (url.endsWith('/v2/')) return new Response('{}', { status: 200 }); // the API version check
      if (url.startsWith('https://reg.example/v2/a/manifests/')) return new Response(null, { status: 307, headers: { location: 'http://reg.example/x' } });
      if (url.startsWith('https://big.example/')) return new Response('x'.repeat(16), { status: 200, headers: { 'content-length': String(5 * 1024 * 1024) } });
      return new Response('unexpected', { status: 500 });
    };
    const client = new RegistryClient('reg.example', { fetch: fake, credentials: async () => creds, attempts: 1 });
    await expect(client.getManifest('a', 'latest')).rejects.toThrow(/https to plain http/);
    expect(calls.filter((c) => c.startsWith('http://'))).toEqual([]);
    const big = new RegistryClient('big.example', { fetch: fake, attempts: 1 });
    await expect(big.getManifest('a', 'latest')).rejects.toThrow(/more than the 4194304 allowed/);
  });

  it('refuses a blob digest that is not a digest before making any request', async () => {
    const client = new RegistryClient(plain.host);
    await expect(client.blob('library/busybox', 'sha256:../../v2/x')).rejects.toThrow(/invalid digest/);
  });
});
