/**
 * A client for the OCI distribution API (what `docker pull` talks to): endpoint and scheme selection, mirrors for
 * Docker Hub, the 401 → token → retry dance (through `RegistryAuthenticator`), redirects that never carry
 * credentials to another host, and retries with backoff on 5xx and dropped connections.
 * @module
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { BerthError } from '../errors.js';
import { dockerConfigCredentials, RegistryAuthenticator, type Credentials } from './auth.js';
import { MANIFEST_ACCEPT } from './media-types.js';
import { DOCKER_HUB, isValidDigest } from './reference.js';

/** A registry answered with an error, or could not be reached. */
export class RegistryError extends BerthError {
  /** The HTTP status, when there was an answer. */
  readonly status: number | undefined;

  constructor(message: string, status?: number, options?: { cause?: unknown }) {
    super(status === 404 ? 'ERR_NOT_FOUND' : status === 401 || status === 403 ? 'ERR_REGISTRY_DENIED' : 'ERR_REGISTRY', message, options);
    this.status = status;
  }
}

/** How berth reaches registries. */
export interface RegistryOptions {
  /** Registries (host[:port]) that may be used over plain HTTP. Loopback hosts always may. */
  insecureRegistries?: readonly string[];
  /** Mirrors tried first for docker.io pulls, as Docker's `registry-mirrors` (URLs, e.g. `http://127.0.0.1:5000`). */
  mirrors?: readonly string[];
  /** Where credentials come from; default `~/.docker/config.json` (auths, credsStore, credHelpers). */
  credentials?: (registry: string) => Promise<Credentials | undefined>;
  /** Attempts per request on 5xx answers and network errors (default 4). */
  attempts?: number;
  /** The fetch implementation (tests). */
  fetch?: typeof fetch;
  userAgent?: string;
}

/** A registry endpoint: the base URL requests go to, and the host its credentials belong to. */
export interface Endpoint {
  /** e.g. `https://registry-1.docker.io`, `http://127.0.0.1:5000`. */
  base: string;
  /** The registry name credentials are looked up by (`docker.io`, `localhost:5000`). */
  registry: string;
  /** A mirror: failures fall back to the next endpoint. */
  mirror: boolean;
}

/** Whether a host (with optional port) is a loopback address. */
export function isLoopback(host: string): boolean {
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  if (isIP(name) === 4) return name.startsWith('127.');
  if (isIP(name) === 6) return name === '::1';
  return false;
}

/** The endpoints to try for a registry, in order. */
export function endpointsFor(domain: string, options: RegistryOptions = {}): Endpoint[] {
  const out: Endpoint[] = [];
  if (domain === DOCKER_HUB) {
    for (const m of options.mirrors ?? []) {
      const url = new URL(m);
      out.push({ base: `${url.protocol}//${url.host}`, registry: url.host, mirror: true });
    }
    out.push({ base: 'https://registry-1.docker.io', registry: DOCKER_HUB, mirror: false });
    return out;
  }
  const insecure = isLoopback(domain) || (options.insecureRegistries ?? []).includes(domain);
  out.push({ base: `${insecure ? 'http' : 'https'}://${domain}`, registry: domain, mirror: false });
  return out;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });

/** A manifest as fetched: its bytes, media type and digest (verified when asked for by digest). */
export interface FetchedManifest {
  bytes: Buffer;
  mediaType: string;
  digest: string;
}

/** Talks to one registry (all of its endpoints, mirrors first). */
export class RegistryClient {
  readonly domain: string;
  readonly #options: RegistryOptions;
  readonly #endpoints: Endpoint[];
  readonly #auth = new Map<string, RegistryAuthenticator>();
  readonly #pinged = new Map<string, Promise<void>>();
  readonly #fetch: typeof fetch;

  constructor(domain: string, options: RegistryOptions = {}) {
    this.domain = domain;
    this.#options = options;
    this.#endpoints = endpointsFor(domain, options);
    this.#fetch = options.fetch ?? fetch;
  }

  /** Fetches a manifest by tag or digest. A digest reference is verified against the bytes. */
  async getManifest(repository: string, reference: string, signal?: AbortSignal): Promise<FetchedManifest> {
    const path = `/v2/${repository}/manifests/${reference}`;
    const res = await this.#request(repository, path, { accept: MANIFEST_ACCEPT, signal });
    const bytes = await readLimited(res, MAX_MANIFEST_BYTES, `manifest ${repository}:${reference}`);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    // A digest reference is verified with its own algorithm (an index may name sha512 manifests).
    const algorithm = /^(sha256|sha512):/.exec(reference)?.[1];
    if (algorithm) {
      const actual = `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
      if (actual !== reference) {
        throw new RegistryError(`the registry sent a manifest whose digest ${actual} does not match the requested ${reference}`);
      }
      return { bytes, mediaType: res.headers.get('content-type')?.split(';')[0]?.trim() ?? '', digest: algorithm === 'sha256' ? digest : reference };
    }
    const mediaType = res.headers.get('content-type')?.split(';')[0]?.trim() ?? '';
    return { bytes, mediaType, digest };
  }

  /**
   * Streams a blob. The caller verifies size and digest while storing it (the store does); the stream ends with
   * an error when the connection drops (`blob()` is safe to call again to retry).
   */
  async blob(repository: string, digest: string, signal?: AbortSignal): Promise<{ size: number | undefined; body: AsyncIterable<Uint8Array> }> {
    if (!isValidDigest(digest)) throw new RegistryError(`refusing to fetch blob with invalid digest "${digest}"`);
    const res = await this.#request(repository, `/v2/${repository}/blobs/${digest}`, { signal });
    if (!res.body) throw new RegistryError(`the registry sent no body for blob ${digest}`);
    const length = res.headers.get('content-length');
    return { size: length ? Number(length) : undefined, body: res.body as unknown as AsyncIterable<Uint8Array> };
  }

  #authenticator(endpoint: Endpoint): RegistryAuthenticator {
    let a = this.#auth.get(endpoint.base);
    if (!a) {
      const creds = this.#options.credentials ?? ((r: string) => dockerConfigCredentials(r));
      a = new RegistryAuthenticator({
        host: endpoint.registry,
        credentials: () => creds(endpoint.registry),
        fetch: this.#fetch,
        insecure: endpoint.base.startsWith('http:'),
        ...(this.#options.userAgent ? { userAgent: this.#options.userAgent } : {}),
      });
      this.#auth.set(endpoint.base, a);
    }
    return a;
  }

  /** One logical GET: each endpoint in turn (mirrors first), retries, auth, redirects. */
  async #request(repository: string, path: string, opts: { accept?: string; signal?: AbortSignal | undefined }): Promise<Response> {
    const scope = `repository:${repository}:pull`;
    let lastError: unknown;
    for (const endpoint of this.#endpoints) {
      try {
        return await this.#requestEndpoint(endpoint, scope, path, opts);
      } catch (e) {
        lastError = e;
        if (opts.signal?.aborted) throw e;
        // A mirror that fails or lacks the content falls back to the next endpoint; the registry itself is final.
        if (!endpoint.mirror) throw e;
      }
    }
    throw lastError;
  }

  /**
   * `GET /v2/` once per endpoint, as Docker does before its first request: proves the endpoint speaks the
   * distribution API (a web server's 404 page becomes a clear error, and a dead mirror is skipped at once), and
   * its 401 challenge fetches the token before the first real request. Shared by concurrent requests.
   */
  #ping(endpoint: Endpoint, scope: string, signal: AbortSignal | undefined): Promise<void> {
    let ping = this.#pinged.get(endpoint.base);
    if (!ping) {
      ping = this.#doPing(endpoint, scope, signal);
      this.#pinged.set(endpoint.base, ping);
      // A failed ping (or an aborted one) is tried again by the next request.
      ping.catch(() => this.#pinged.delete(endpoint.base));
    }
    return ping;
  }

  async #doPing(endpoint: Endpoint, scope: string, signal: AbortSignal | undefined): Promise<void> {
    const attempts = this.#options.attempts ?? 4;
    for (let attempt = 1; ; attempt++) {
      let res: Response;
      try {
        res = (await this.#followRedirects(new URL('/v2/', endpoint.base), undefined, { signal })).res;
      } catch (e) {
        if (e instanceof RegistryError) throw e;
        if (signal?.aborted || attempt >= attempts) {
          throw new RegistryError(`cannot reach ${endpoint.base}: ${(e as Error).message}`, undefined, { cause: e });
        }
        await sleep(backoff(attempt), signal);
        continue;
      }
      if (res.status >= 500 && attempt < attempts) {
        await res.body?.cancel();
        await sleep(backoff(attempt), signal);
        continue;
      }
      if (res.status >= 500) throw await responseError(endpoint, '/v2/', res);
      const challenge = res.headers.get('www-authenticate');
      await res.body?.cancel();
      if (res.ok) return;
      if (res.status === 401 && challenge) {
        // Errors here are the same a first request's challenge would give (bad credentials, token server down).
        await this.#authenticator(endpoint).authorize(challenge, scope, signal);
        return;
      }
      throw new RegistryError(
        `${endpoint.base} is not a container registry (GET /v2/ answered HTTP ${res.status}${res.status === 401 ? ' without a challenge' : ''})`,
        res.status,
      );
    }
  }

  async #requestEndpoint(endpoint: Endpoint, scope: string, path: string, opts: { accept?: string; signal?: AbortSignal | undefined }): Promise<Response> {
    const auth = this.#authenticator(endpoint);
    const attempts = this.#options.attempts ?? 4;
    await this.#ping(endpoint, scope, opts.signal);
    let authorization = auth.cachedAuthorization(scope);
    let challenged = false;
    for (let attempt = 1; ; attempt++) {
      let res: Response;
      let sameOrigin: boolean;
      try {
        ({ res, sameOrigin } = await this.#followRedirects(new URL(path, endpoint.base), authorization, opts));
      } catch (e) {
        if (e instanceof RegistryError) throw e;
        if (opts.signal?.aborted || attempt >= attempts) {
          throw new RegistryError(`cannot reach ${endpoint.base}: ${(e as Error).message}`, undefined, { cause: e });
        }
        await sleep(backoff(attempt), opts.signal);
        continue;
      }
      if (res.status === 401 && !sameOrigin) {
        // A challenge from where a redirect led is not the registry's: our credentials are not for it.
        await res.body?.cancel();
        throw new RegistryError(`${endpoint.base}${path}: access denied by the host it redirected to`, 401);
      }
      if (res.status === 401 && !challenged) {
        const header = res.headers.get('www-authenticate');
        await res.body?.cancel();
        if (!header) throw new RegistryError(`${endpoint.base} requires authentication but sent no challenge`, 401);
        authorization = await auth.authorize(header, scope, opts.signal, authorization);
        challenged = true;
        continue;
      }
      if (res.status >= 500 && attempt < attempts) {
        await res.body?.cancel();
        await sleep(backoff(attempt), opts.signal);
        continue;
      }
      if (!res.ok) throw await responseError(endpoint, path, res);
      return res;
    }
  }

  /** GET with manual redirects: the Authorization header only ever goes to the host it was issued for. */
  /**
   * GET with manual redirects: the Authorization header only ever goes to the origin (scheme, host and port) it
   * was issued for, and an https registry may not redirect to plain http. Returns the answer and whether it came
   * from the original origin (a 401 from elsewhere must not be answered with our credentials).
   */
  async #followRedirects(url: URL, authorization: string | undefined, opts: { accept?: string; signal?: AbortSignal | undefined }): Promise<{ res: Response; sameOrigin: boolean }> {
    const origin = url.origin;
    const secure = url.protocol === 'https:';
    for (let hops = 0; hops < 6; hops++) {
      const headers: Record<string, string> = { 'user-agent': this.#options.userAgent ?? 'berth' };
      if (opts.accept) headers.accept = opts.accept;
      if (authorization && url.origin === origin) headers.authorization = authorization;
      const res = await this.#fetch(url, { headers, redirect: 'manual', ...(opts.signal ? { signal: opts.signal } : {}) });
      if (res.status < 300 || res.status >= 400 || res.status === 304) return { res, sameOrigin: url.origin === origin };
      const location = res.headers.get('location');
      await res.body?.cancel();
      if (!location) return { res, sameOrigin: url.origin === origin };
      url = new URL(location, url);
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new RegistryError(`refusing redirect to ${url.protocol} URL`);
      if (secure && url.protocol === 'http:' && !isLoopback(url.host)) {
        throw new RegistryError(`refusing a redirect from https to plain http (${url.origin})`);
      }
    }
    throw new RegistryError(`too many redirects fetching ${url.pathname}`);
  }
}

/** Docker's cap on a manifest's size: anything bigger is refused rather than read into memory. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** Reads a response body, refusing one longer than `limit`. */
async function readLimited(res: Response, limit: number, what: string): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > limit) {
    await res.body?.cancel();
    throw new RegistryError(`${what} is ${declared} bytes, more than the ${limit} allowed`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of (res.body ?? []) as AsyncIterable<Uint8Array>) {
    total += chunk.length;
    if (total > limit) throw new RegistryError(`${what} is more than the ${limit} bytes allowed`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

function backoff(attempt: number): number {
  return Math.min(100 * 2 ** (attempt - 1), 2000) + Math.floor(Math.random() * 50);
}

/** Turns an error answer (with the distribution API's `errors` body when present) into a RegistryError. */
async function responseError(endpoint: Endpoint, path: string, res: Response): Promise<RegistryError> {
  let detail = '';
  try {
    const body = JSON.parse((await readLimited(res, 64 * 1024, 'error body')).toString('utf8')) as { errors?: { code?: string; message?: string }[] };
    detail = (body.errors ?? []).map((e) => [e.code, e.message].filter(Boolean).join(': ')).join('; ');
  } catch {
    // not JSON
  }
  const what = res.status === 404 ? 'not found' : res.status === 401 || res.status === 403 ? 'access denied' : `HTTP ${res.status}`;
  return new RegistryError(`${endpoint.base}${path}: ${what}${detail ? ` (${detail})` : ''}`, res.status);
}
