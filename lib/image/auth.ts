/**
 * Registry authentication the way Docker does it: `WWW-Authenticate` challenges, the distribution token flow
 * (anonymous, Basic credentials, or an OAuth2 refresh token), plain Basic auth, and credentials from the Docker
 * CLI's `config.json` and its credential helpers.
 *
 * Safety rules, from the runtime CVE lessons: credentials only go to the token realm the registry named or to the
 * registry itself; a redirect to another origin never carries them; and they never cross plain HTTP to a host that
 * is neither loopback nor explicitly marked insecure.
 * @module
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { AbortError } from '../errors.js';
import { CredentialHelperError, DockerConfigError, RegistryAuthError } from './auth-errors.js';

// ---------------------------------------------------------------------------------------------------------------
// Challenges
// ---------------------------------------------------------------------------------------------------------------

/** One challenge of a `WWW-Authenticate` header. */
export interface Challenge {
  /** The auth scheme, lowercased (`bearer`, `basic`): schemes are case-insensitive (RFC 7235). */
  scheme: string;
  /** The auth parameters, names lowercased, values unquoted and unescaped. The first of duplicate names wins. */
  params: Record<string, string>;
  /** The token68 form some schemes use instead of parameters (`Negotiate abc==`), when present. */
  token68?: string;
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*/;

/**
 * Parses a `WWW-Authenticate` header into its challenges. A header may hold several
 * (`Bearer realm="https://a/token",service="reg", Basic realm="r"`); commas separate both challenges and
 * parameters, so a token followed by `=` is a parameter and any other token starts a new challenge. Quoted
 * strings may hold commas and backslash escapes. The parser is lenient: registries in the wild send sloppy
 * headers, so garbage is skipped rather than failing the whole pull.
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let current: { scheme: string; params: Map<string, string>; token68?: string } | undefined;
  const all: NonNullable<typeof current>[] = [];
  const n = header.length;
  let i = 0;

  const skipSpace = (): void => {
    while (i < n && (header[i] === ' ' || header[i] === '\t')) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < n && TCHAR.test(header[i]!)) i++;
    return header.slice(start, i);
  };
  const readQuoted = (): string => {
    i++; // opening quote
    let s = '';
    while (i < n) {
      const c = header[i]!;
      if (c === '\\' && i + 1 < n) {
        s += header[i + 1];
        i += 2;
      } else if (c === '"') {
        i++;
        return s;
      } else {
        s += c;
        i++;
      }
    }
    return s; // unterminated: keep what there is rather than dropping the challenge
  };
  // Unquoted values should be tokens, but realms such as https://host/token are often sent bare.
  const readBare = (): string => {
    const start = i;
    while (i < n && header[i] !== ',' && header[i] !== ' ' && header[i] !== '\t') i++;
    return header.slice(start, i);
  };

  while (i < n) {
    skipSpace();
    if (i >= n) break;
    if (header[i] === ',') {
      i++;
      continue;
    }
    const token = readToken();
    if (token === '') {
      // Not a token: skip the character (a whole quoted string, so its commas do not split anything).
      if (header[i] === '"') readQuoted();
      else i++;
      continue;
    }
    skipSpace();
    if (header[i] === '=') {
      i++;
      skipSpace();
      const value = header[i] === '"' ? readQuoted() : readBare();
      const name = token.toLowerCase();
      // A parameter before any scheme belongs to nothing; drop it.
      if (current && !current.params.has(name)) current.params.set(name, value);
      continue;
    }
    current = { scheme: token.toLowerCase(), params: new Map() };
    all.push(current);
    // token68 must be the only thing up to the next comma; `realm=…` also matches the regex, so look past it.
    const m = TOKEN68.exec(header.slice(i));
    if (m) {
      let j = i + m[0].length;
      while (j < n && (header[j] === ' ' || header[j] === '\t')) j++;
      if (j >= n || header[j] === ',') {
        current.token68 = m[0];
        i = j;
      }
    }
  }
  for (const c of all) {
    // fromEntries defines own properties, so a parameter called __proto__ cannot touch the prototype.
    const challenge: Challenge = { scheme: c.scheme, params: Object.fromEntries(c.params) };
    if (c.token68 !== undefined) challenge.token68 = c.token68;
    out.push(challenge);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Credentials from the Docker CLI configuration
// ---------------------------------------------------------------------------------------------------------------

/**
 * Credentials for one registry: a username and password, or an identity token (an OAuth2 refresh token, which
 * `docker login` stores for registries that issue them and which is exchanged at the token server).
 */
export type Credentials = { username: string; password: string } | { identityToken: string };

/** The key Docker uses for Docker Hub in `auths` and for its credential helpers, for historical reasons. */
export const DOCKER_HUB_AUTH_KEY = 'https://index.docker.io/v1/';
const HUB_HOSTS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/** How long a credential helper may take; helpers that unlock a keyring can be slow, but must not hang a pull. */
const DEFAULT_HELPER_TIMEOUT_MS = 30_000;
const HELPER_NOT_FOUND = /credentials not found/i;

const AuthEntrySchema = z.looseObject({
  auth: z.string().optional(),
  username: z.string().optional(),
  password: z.string().optional(),
  identitytoken: z.string().optional(),
});
const DockerConfigSchema = z.looseObject({
  auths: z.record(z.string(), AuthEntrySchema).optional(),
  credsStore: z.string().optional(),
  credHelpers: z.record(z.string(), z.string()).optional(),
});
const HelperOutputSchema = z.looseObject({ Username: z.string(), Secret: z.string() });
// The helper name becomes part of a program name: refuse anything that could point at another path.
const HELPER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** `https://Host:5000/v1/` → `host:5000`: config keys come in URL and bare forms. */
function hostOfKey(key: string): string {
  let s = key.trim();
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(s);
  if (scheme) s = s.slice(scheme[0].length);
  const slash = s.indexOf('/');
  if (slash >= 0) s = s.slice(0, slash);
  s = s.toLowerCase();
  return HUB_HOSTS.has(s) ? 'docker.io' : s;
}

/** The entry for `registry` in a config map: an exact key first, then any key naming the same host. */
function findEntry<T>(record: Record<string, T> | undefined, registry: string): [key: string, value: T] | undefined {
  if (!record) return undefined;
  const host = hostOfKey(registry);
  const exact = host === 'docker.io' ? [registry, DOCKER_HUB_AUTH_KEY, 'docker.io'] : [registry, host];
  for (const key of exact) {
    if (Object.hasOwn(record, key)) return [key, record[key]!];
  }
  for (const key of Object.keys(record)) {
    if (hostOfKey(key) === host) return [key, record[key]!];
  }
  return undefined;
}

function decodeEntry(entry: z.infer<typeof AuthEntrySchema>, where: string, path: string): Credentials | undefined {
  // An identity token outranks a password, as in Docker: it is what `docker login` got in exchange for one.
  if (entry.identitytoken) return { identityToken: entry.identitytoken };
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) {
      throw new DockerConfigError(path, `${path}: ${where}.auth is not base64 of "username:password"`);
    }
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (entry.username !== undefined && entry.password !== undefined && entry.username !== '') {
    return { username: entry.username, password: entry.password };
  }
  // `{}` is what docker login writes when the secret went to a credential store.
  return undefined;
}

/** Runs `docker-credential-<name> get` with the server URL on stdin, per the credential helper protocol. */
function runHelper(
  name: string,
  serverUrl: string,
  env: NodeJS.ProcessEnv,
  origin: string,
  timeoutMs: number,
): Promise<Credentials | undefined> {
  const program = `docker-credential-${name}`;
  if (!HELPER_NAME.test(name)) {
    return Promise.reject(new CredentialHelperError(program, `invalid credential helper name "${name}" (${origin})`));
  }
  return new Promise((resolve, reject) => {
    // execFile resolves the program on env.PATH when env is given, so callers can control where helpers come from.
    const child = execFile(
      program,
      ['get'],
      { env, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 1 << 20, encoding: 'utf8' },
      (error, stdout, stderr) => {
        if (error) {
          const e = error as NodeJS.ErrnoException & { killed?: boolean; code?: unknown };
          if (e.code === 'ENOENT') {
            reject(
              new CredentialHelperError(
                program,
                `credential helper ${program} was not found on PATH (${origin}); install it, or remove that ` +
                  'setting from the Docker config',
                { cause: error },
              ),
            );
          } else if (e.killed) {
            reject(
              new CredentialHelperError(program, `credential helper ${program} timed out after ${timeoutMs} ms`, {
                cause: error,
              }),
            );
          } else if (HELPER_NOT_FOUND.test(stdout) || HELPER_NOT_FOUND.test(stderr)) {
            resolve(undefined);
          } else {
            const detail = (stderr.trim() || stdout.trim()).slice(0, 500);
            reject(
              new CredentialHelperError(program, `credential helper ${program} failed for ${serverUrl}: ${detail || error.message}`, {
                cause: error,
              }),
            );
          }
          return;
        }
        let parsed: z.infer<typeof HelperOutputSchema>;
        try {
          parsed = HelperOutputSchema.parse(JSON.parse(stdout));
        } catch (cause) {
          reject(
            new CredentialHelperError(program, `credential helper ${program} answered something other than {Username, Secret}`, {
              cause,
            }),
          );
          return;
        }
        if (parsed.Secret === '') resolve(undefined);
        // "<token>" is the helper protocol's marker for an identity token rather than a password.
        else if (parsed.Username === '<token>') resolve({ identityToken: parsed.Secret });
        else resolve({ username: parsed.Username, password: parsed.Secret });
      },
    );
    // A helper that exits without reading stdin must not crash us with EPIPE; its exit status tells the story.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(serverUrl);
  });
}

/**
 * Looks up credentials for `registry` (a host such as `localhost:5000`, `docker.io`, or a URL form such as
 * `https://index.docker.io/v1/`) the way the Docker CLI does: `credHelpers[registry]`, else `credsStore`, else the
 * `auths` entry. Reads `$DOCKER_CONFIG/config.json` or `~/.docker/config.json` unless `configPath` names the file.
 *
 * Docker Hub is keyed `https://index.docker.io/v1/` by Docker; `docker.io`, `index.docker.io` and
 * `registry-1.docker.io` all find it. When a helper has nothing for the registry, a plain `auths` entry is still
 * used, so configs that mix both keep working.
 *
 * @param options.configPath the config file to read instead of the default one.
 * @param options.env the environment: `DOCKER_CONFIG`, `HOME`, and the `PATH` helpers are looked up on.
 * @param options.helperTimeoutMs how long a credential helper may run before it is killed (default 30 s).
 * @returns the credentials, or `undefined` when none are configured (anonymous access).
 * @throws DockerConfigError when the file is not valid JSON of the expected shape.
 * @throws CredentialHelperError when a configured helper is missing, fails, or times out.
 */
export async function dockerConfigCredentials(
  registry: string,
  options?: { configPath?: string; env?: NodeJS.ProcessEnv; helperTimeoutMs?: number },
): Promise<Credentials | undefined> {
  const env = options?.env ?? process.env;
  const timeoutMs = options?.helperTimeoutMs ?? DEFAULT_HELPER_TIMEOUT_MS;
  const path =
    options?.configPath ??
    (env.DOCKER_CONFIG ? join(env.DOCKER_CONFIG, 'config.json') : join(env.HOME || homedir(), '.docker', 'config.json'));
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined; // no config: anonymous, as Docker does
    throw new DockerConfigError(path, `cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new DockerConfigError(path, `${path} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  const result = DockerConfigSchema.safeParse(json);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new DockerConfigError(path, `${path} is not a valid Docker config: ${issues}`, { cause: result.error });
  }
  const config = result.data;
  const host = hostOfKey(registry);
  // Helpers are asked with the key docker login stored under: the v1 URL for Hub, the bare host otherwise.
  const serverUrl = host === 'docker.io' ? DOCKER_HUB_AUTH_KEY : host;

  let fromHelper: Credentials | undefined;
  const helper = findEntry(config.credHelpers, registry);
  if (helper) {
    fromHelper = await runHelper(helper[1], serverUrl, env, `credHelpers["${helper[0]}"] in ${path}`, timeoutMs);
  } else if (config.credsStore) {
    fromHelper = await runHelper(config.credsStore, serverUrl, env, `credsStore in ${path}`, timeoutMs);
  }
  if (fromHelper) return fromHelper;

  const entry = findEntry(config.auths, registry);
  return entry ? decodeEntry(entry[1], `auths["${entry[0]}"]`, path) : undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// The authenticator
// ---------------------------------------------------------------------------------------------------------------

/** Options of {@link RegistryAuthenticator}. */
export interface RegistryAuthenticatorOptions {
  /** The registry host (and port) this authenticator serves, e.g. `registry-1.docker.io`, `127.0.0.1:5000`. */
  host: string;
  /** Returns the credentials to use, or `undefined` for anonymous access. Called at most once, lazily. */
  credentials?: () => Promise<Credentials | undefined>;
  /** The fetch to use; Node's global fetch by default. */
  fetch?: typeof fetch;
  /** The User-Agent sent to token servers. */
  userAgent?: string;
  /**
   * Allow sending credentials to a token realm over plain HTTP on a non-loopback host. Only for registries the
   * user explicitly marked insecure, on a network they trust.
   */
  insecure?: boolean;
}

/** Token servers answer tokens that live at least this long (distribution token spec). */
const MIN_TOKEN_LIFETIME_S = 60;
/** Stop reusing a token a little before it expires, so a request in flight does not arrive with a dead one. */
const EXPIRY_MARGIN_MS = 10_000;
const MAX_REDIRECTS = 5;
/** A token response is a few KB; do not let a hostile server make us buffer gigabytes. */
const MAX_TOKEN_RESPONSE = 1 << 20;
const DEFAULT_USER_AGENT = 'berth';
const OAUTH_CLIENT_ID = 'berth';

const TokenResponseSchema = z.looseObject({
  token: z.string().optional(),
  access_token: z.string().optional(),
  expires_in: z.number().optional(),
  issued_at: z.string().optional(),
});

/**
 * Scopes as a sorted, duplicate-free list, with the actions on one resource merged (`repository:x:pull` and
 * `repository:x:push` → `repository:x:pull,push`): `"a b"`, `["b", "a"]` and `["a", "b", "a"]` are one cache key,
 * and a challenge naming a scope the caller already asks for does not add a second, narrower one.
 */
function normalizeScopes(scope: string | readonly string[]): string[] {
  const list = typeof scope === 'string' ? scope.split(' ') : scope.flatMap((s) => s.split(' '));
  const resources = new Map<string, Set<string>>();
  const opaque = new Set<string>();
  for (const s of list) {
    if (s === '') continue;
    // type:name:actions, where the name never holds the last colon but a type such as repository(plugin) may.
    const first = s.indexOf(':');
    const last = s.lastIndexOf(':');
    if (first < 0 || last === first) {
      opaque.add(s);
      continue;
    }
    const resource = s.slice(0, last);
    const actions = resources.get(resource) ?? new Set<string>();
    for (const a of s.slice(last + 1).split(',')) if (a !== '') actions.add(a);
    resources.set(resource, actions);
  }
  const out = [...opaque];
  for (const [resource, actions] of resources) out.push(`${resource}:${[...actions].sort().join(',')}`);
  return out.sort();
}

/** Whether a URL hostname is this machine's loopback, where plain HTTP cannot be read by anyone on a network. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  const family = isIP(h);
  if (family === 4) return h.startsWith('127.');
  if (family === 6) return h === '::1' || /^::ffff:(127\.|7f[0-9a-f]{2}:)/.test(h);
  return false;
}

/** Rejects when the signal aborts, without waiting for `promise` (which may be shared with other callers). */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(new AbortError());
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new AbortError());
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

async function readLimited(response: Response, limit: number): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw new Error(`response larger than ${limit} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Answers a registry's 401 challenges for one registry host and caches what it got. A registry client keeps one
 * per host: before a request it asks {@link cachedAuthorization}; on a 401 it calls {@link authorize} with the
 * `WWW-Authenticate` header and retries with the returned `Authorization` value.
 *
 * Bearer challenges go to the token server named by `realm` (which may be another host: the token spec sends
 * credentials there), anonymously or with Basic credentials, or with an identity token as an OAuth2
 * refresh-token grant. Tokens are cached per scope set until shortly before they expire, and concurrent requests
 * for one scope share one token request, so pulling many layers at once costs one round trip.
 */
export class RegistryAuthenticator {
  /** The registry host this authenticator serves. */
  readonly host: string;
  readonly #credentialsSource: (() => Promise<Credentials | undefined>) | undefined;
  #credentials: Promise<Credentials | undefined> | undefined;
  readonly #fetch: typeof fetch;
  readonly #userAgent: string;
  readonly #insecure: boolean;
  readonly #tokens = new Map<string, { authorization: string; reuseUntil: number }>();
  readonly #inflight = new Map<string, Promise<string>>();
  #basic: string | undefined;

  /** Creates an authenticator for `options.host`; nothing is fetched or looked up until a challenge needs it. */
  constructor(options: RegistryAuthenticatorOptions) {
    this.host = options.host;
    this.#credentialsSource = options.credentials;
    this.#fetch = options.fetch ?? fetch;
    this.#userAgent = options.userAgent ?? DEFAULT_USER_AGENT;
    this.#insecure = options.insecure ?? false;
  }

  /**
   * The `Authorization` value to send pre-emptively for `scope`, saving the 401 round trip: a cached bearer token
   * that is not about to expire, else Basic credentials the registry accepted before, else `undefined`.
   * @param scope one scope (`repository:team/app:pull`), several separated by spaces, or a list; `''` for `/v2/`.
   */
  cachedAuthorization(scope: string | readonly string[] = ''): string | undefined {
    const key = normalizeScopes(scope).join(' ');
    const cached = this.#tokens.get(key);
    if (cached) {
      if (Date.now() < cached.reuseUntil) return cached.authorization;
      this.#tokens.delete(key);
    }
    return this.#basic;
  }

  /**
   * Answers a 401: returns the `Authorization` value for the retry. Prefers a Bearer challenge over Basic when the
   * header offers both. A new token is always requested (a 401 may mean a cached one was revoked), except that
   * callers asking for the same scope at the same time share one request.
   *
   * @param challengeHeader the response's `WWW-Authenticate` header (all challenges, comma-joined).
   * @param scope what the request needs, e.g. `repository:team/app:pull` (several: a list or space-separated).
   *   Scopes named by the challenge itself are requested too.
   * @param signal aborts the token request.
   * @param rejected the `Authorization` value the registry just answered 401 to, if any. Rejected Basic
   *   credentials make this throw (sending them again cannot help); a rejected token is dropped from the cache.
   * @throws RegistryAuthError when credentials are missing or refused, the token server fails, or credentials
   *   would cross plain HTTP to a non-loopback host.
   * @throws AbortError when `signal` aborts.
   */
  async authorize(
    challengeHeader: string,
    scope: string | readonly string[],
    signal?: AbortSignal,
    rejected?: string,
  ): Promise<string> {
    if (signal?.aborted) throw new AbortError();
    const scopes = normalizeScopes(scope);
    const key = scopes.join(' ');
    if (rejected !== undefined) {
      for (const [k, v] of this.#tokens) if (v.authorization === rejected) this.#tokens.delete(k);
    }
    const challenges = parseChallenges(challengeHeader);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer) {
      const extra = bearer.params.scope ? bearer.params.scope.split(' ') : [];
      const wanted = normalizeScopes([...scopes, ...extra]);
      return this.#shared(key, (s) => this.#fetchToken(bearer, wanted, key, s), signal);
    }
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (basic) return this.#answerBasic(basic, rejected);
    throw new RegistryAuthError(
      this.host,
      challenges.length > 0
        ? `registry ${this.host} asks for unsupported authentication (${challenges.map((c) => c.scheme).join(', ')}); ` +
            'berth supports Bearer and Basic'
        : `registry ${this.host} answered 401 without a usable WWW-Authenticate challenge`,
      { status: 401 },
    );
  }

  #loadCredentials(): Promise<Credentials | undefined> {
    if (!this.#credentialsSource) return Promise.resolve(undefined);
    // Helpers are processes and may prompt a keyring: ask once per authenticator, but retry after a failure.
    this.#credentials ??= this.#credentialsSource().catch((error: unknown) => {
      this.#credentials = undefined;
      throw error;
    });
    return this.#credentials;
  }

  async #answerBasic(challenge: Challenge, rejected: string | undefined): Promise<string> {
    const credentials = await this.#loadCredentials();
    const realm = challenge.params.realm ? ` (realm "${challenge.params.realm}")` : '';
    if (!credentials) {
      throw new RegistryAuthError(
        this.host,
        `registry ${this.host} requires a username and password${realm} and none are configured: ` +
          `run "docker login ${this.host}" or pass credentials`,
        { status: 401 },
      );
    }
    if (!('username' in credentials)) {
      throw new RegistryAuthError(
        this.host,
        `registry ${this.host} asks for Basic auth${realm}, which needs a username and password, but only an ` +
          'identity token is configured',
        { status: 401 },
      );
    }
    const authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
    if (rejected !== undefined && rejected === authorization) {
      this.#basic = undefined;
      throw new RegistryAuthError(
        this.host,
        `registry ${this.host} rejected the password for user "${credentials.username}"${realm}: check the ` +
          `credentials (docker login ${this.host})`,
        { status: 401 },
      );
    }
    this.#basic = authorization;
    return authorization;
  }

  /** Runs `start` once per key at a time; a caller whose own signal is fine retries if the owner aborted. */
  async #shared(key: string, start: (signal?: AbortSignal) => Promise<string>, signal?: AbortSignal): Promise<string> {
    for (;;) {
      let promise = this.#inflight.get(key);
      if (!promise) {
        const started: Promise<string> = start(signal).finally(() => {
          if (this.#inflight.get(key) === started) this.#inflight.delete(key);
        });
        promise = started;
        this.#inflight.set(key, promise);
      }
      try {
        return await raceAbort(promise, signal);
      } catch (error) {
        if (error instanceof AbortError && !signal?.aborted) continue;
        throw error;
      }
    }
  }

  #assertSafeRealm(realm: URL): void {
    if (realm.protocol === 'http:' && !isLoopbackHost(realm.hostname) && !this.#insecure) {
      throw new RegistryAuthError(
        this.host,
        `refusing to send credentials for ${this.host} to its token server ${realm.origin} over plain HTTP, where ` +
          'anyone on the network path could read them; serve the token realm over HTTPS, or, only on a network ' +
          'you trust, mark the registry insecure',
      );
    }
  }

  async #fetchToken(challenge: Challenge, scopes: string[], key: string, signal?: AbortSignal): Promise<string> {
    const realmText = challenge.params.realm;
    if (!realmText) {
      throw new RegistryAuthError(this.host, `registry ${this.host} sent a Bearer challenge without a realm`, {
        status: 401,
      });
    }
    let realm: URL;
    try {
      realm = new URL(realmText);
    } catch (cause) {
      throw new RegistryAuthError(this.host, `registry ${this.host} sent an invalid token realm "${realmText}"`, { cause });
    }
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') {
      throw new RegistryAuthError(this.host, `registry ${this.host} sent a token realm that is not HTTP(S): ${realmText}`);
    }
    const credentials = await this.#loadCredentials();
    if (credentials) this.#assertSafeRealm(realm);
    const service = challenge.params.service;
    const started = Date.now();

    let response: Response;
    let who: string;
    if (credentials && 'identityToken' in credentials) {
      // OAuth2 refresh-token grant (distribution token spec): the only way an identity token is accepted.
      who = 'the identity token';
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: credentials.identityToken,
        client_id: OAUTH_CLIENT_ID,
      });
      if (service !== undefined) form.set('service', service);
      if (scopes.length > 0) form.set('scope', scopes.join(' '));
      response = await this.#send(realm, 'POST', { 'content-type': 'application/x-www-form-urlencoded' }, form.toString(), signal);
    } else {
      const url = new URL(realm);
      if (service !== undefined) url.searchParams.set('service', service);
      for (const s of scopes) url.searchParams.append('scope', s);
      const headers: Record<string, string> = {};
      if (credentials) {
        who = `user "${credentials.username}"`;
        url.searchParams.set('account', credentials.username);
        headers.authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
      } else {
        who = 'anonymous access';
      }
      response = await this.#send(url, 'GET', headers, undefined, signal);
    }

    const scopeText = scopes.length > 0 ? scopes.join(' ') : 'the registry';
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel();
      throw new RegistryAuthError(
        this.host,
        credentials
          ? `token server ${realm.origin} for ${this.host} rejected ${who} (HTTP ${response.status}) for ` +
              `${scopeText}: check the credentials (docker login ${this.host})`
          : `token server ${realm.origin} for ${this.host} refused anonymous access to ${scopeText} ` +
              `(HTTP ${response.status}): the repository may be private or missing; log in with "docker login ${this.host}"`,
        { status: response.status },
      );
    }
    let body: string;
    try {
      body = await readLimited(response, MAX_TOKEN_RESPONSE);
    } catch (cause) {
      if (signal?.aborted) throw new AbortError();
      throw new RegistryAuthError(this.host, `reading the token from ${realm.origin} failed: ${(cause as Error).message}`, {
        cause,
      });
    }
    if (!response.ok) {
      throw new RegistryAuthError(
        this.host,
        `token server ${realm.origin} for ${this.host} answered HTTP ${response.status}: ${body.slice(0, 300).trim()}`,
        { status: response.status },
      );
    }
    let parsed: z.infer<typeof TokenResponseSchema>;
    try {
      parsed = TokenResponseSchema.parse(JSON.parse(body));
    } catch (cause) {
      throw new RegistryAuthError(this.host, `token server ${realm.origin} for ${this.host} answered an invalid token response`, {
        cause,
      });
    }
    const token = parsed.token || parsed.access_token;
    // A token goes into a header: anything but visible ASCII would be rejected by fetch later, less clearly.
    if (!token || !/^[\x21-\x7e]+$/.test(token)) {
      throw new RegistryAuthError(this.host, `token server ${realm.origin} for ${this.host} answered no usable token`);
    }
    const lifetimeMs = Math.max(parsed.expires_in ?? MIN_TOKEN_LIFETIME_S, MIN_TOKEN_LIFETIME_S) * 1000;
    // Count from issued_at only when it is earlier than our clock says: a token server whose clock runs ahead
    // must not make us reuse a token past its real expiry.
    const issuedAt = parsed.issued_at !== undefined ? Date.parse(parsed.issued_at) : Number.NaN;
    const base = Number.isFinite(issuedAt) ? Math.min(issuedAt, started) : started;
    const reuseUntil = base + lifetimeMs - Math.min(EXPIRY_MARGIN_MS, lifetimeMs / 10);
    const authorization = `Bearer ${token}`;
    this.#tokens.set(key, { authorization, reuseUntil });
    return authorization;
  }

  /**
   * One token request, following redirects by hand: fetch's own redirect handling would resend a POST body (the
   * identity token) to wherever the server points. Credentials stay with the origin the registry named.
   */
  async #send(
    url: URL,
    method: 'GET' | 'POST',
    headers: Record<string, string>,
    body: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Response> {
    let current = url;
    let currentHeaders: Record<string, string> = { ...headers, 'user-agent': this.#userAgent, accept: 'application/json' };
    let currentMethod = method;
    let currentBody = body;
    for (let hop = 0; ; hop++) {
      let response: Response;
      try {
        response = await this.#fetch(current, {
          method: currentMethod,
          headers: currentHeaders,
          body: currentBody,
          redirect: 'manual',
          signal,
        });
      } catch (cause) {
        if (signal?.aborted) throw new AbortError();
        throw new RegistryAuthError(
          this.host,
          `cannot reach the token server ${current.origin} for ${this.host}: ${(cause as Error).message}` +
            ((cause as { cause?: Error }).cause ? ` (${(cause as { cause: Error }).cause.message})` : ''),
          { cause },
        );
      }
      const location = response.headers.get('location');
      if (![301, 302, 303, 307, 308].includes(response.status) || location === null) return response;
      await response.body?.cancel();
      if (hop >= MAX_REDIRECTS) {
        throw new RegistryAuthError(this.host, `token server ${url.origin} for ${this.host} redirected too many times`);
      }
      const next = new URL(location, current);
      if (next.protocol !== 'https:' && next.protocol !== 'http:') {
        throw new RegistryAuthError(this.host, `token server ${url.origin} redirected to a non-HTTP URL`);
      }
      if (next.origin !== current.origin) {
        if (currentBody !== undefined) {
          throw new RegistryAuthError(
            this.host,
            `token server ${current.origin} for ${this.host} redirected the identity-token request to ${next.origin}; ` +
              'refusing to send the token to another host',
          );
        }
        // Like a browser or Go's client, but stated: another origin never gets the credentials (CVE-2020-15157).
        const { authorization: _dropped, ...rest } = currentHeaders;
        currentHeaders = rest;
      }
      if (response.status === 303 || (currentMethod === 'POST' && response.status !== 307 && response.status !== 308)) {
        currentMethod = 'GET';
        currentBody = undefined;
        const { 'content-type': _type, ...rest } = currentHeaders;
        currentHeaders = rest;
      }
      current = next;
    }
  }
}
