/**
 * A small distribution token server for tests: the registry (Debian's docker-registry in `auth: token` mode)
 * trusts its certificate, and it issues RS256 JWTs the way Docker Hub's auth service does. It checks Basic
 * credentials, the OAuth2 password and refresh-token grants, grants scopes per a policy, and records every request
 * so tests can assert exactly what a client sent.
 */
import { createHash, createPrivateKey, createPublicKey, randomUUID, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One access entry of a token (the registry's `access` claim). */
export interface Access {
  type: string;
  name: string;
  actions: string[];
}

/** Decides what a user (undefined: anonymous) gets of one requested scope; return the granted actions. */
export type AccessPolicy = (user: string | undefined, requested: Access) => string[];

/** What one request to the token server carried, and what it got. */
export interface TokenRequestRecord {
  method: string;
  /** Path and query as received. */
  url: string;
  service: string | undefined;
  /** Requested scopes, from `scope=` query parameters or the form's space-separated `scope`. */
  scopes: string[];
  /** The `account` query parameter. */
  account: string | undefined;
  /** The raw Authorization header, if any. */
  authorization: string | undefined;
  /** The Basic username and password, when the request carried Basic auth. */
  basic: { username: string; password: string } | undefined;
  /** The form body of a POST (OAuth2), decoded. */
  form: Record<string, string> | undefined;
  userAgent: string | undefined;
  /** The user the server authenticated, undefined for anonymous or refused requests. */
  user: string | undefined;
  /** The status the server answered. */
  status: number;
  /** What the token granted (empty when refused). */
  granted: Access[];
}

/** Options of {@link startTokenServer}. */
export interface TokenServerOptions {
  /** PEM private key (RSA) the tokens are signed with. */
  keyPath: string;
  /** PEM self-signed certificate of that key (the registry's rootcertbundle). */
  certPath: string;
  /** The registry's `service` name, which becomes the tokens' audience. */
  service: string;
  /** The tokens' issuer, which the registry checks. */
  issuer: string;
  /** username → password. */
  users?: Record<string, string>;
  /** Identity (refresh) tokens accepted by the OAuth2 refresh-token grant: token → username. */
  refreshTokens?: Record<string, string>;
  /**
   * What anonymous requests get: `pull` (the default, like Docker Hub's public repositories), `none` (a token
   * with no access, so the registry answers 401 insufficient_scope), or `deny` (the token server answers 401).
   */
  anonymous?: 'pull' | 'none' | 'deny';
  /** Overrides the default policy (valid users get pull and push, anonymous per `anonymous`). */
  policy?: AccessPolicy;
  /** How the JWT names its key: a libtrust `kid` (default) or the `x5c` certificate chain. */
  keyHint?: 'kid' | 'x5c';
  /** The `expires_in` answered, in seconds (default 300). */
  expiresIn?: number;
  /** Which response field carries the token (default both, like Docker Hub's auth service). */
  tokenField?: 'token' | 'access_token' | 'both';
}

/** A running token server. */
export interface TokenServer {
  /** The realm URL: `http://127.0.0.1:PORT/token`. */
  realm: string;
  /** `127.0.0.1:PORT`. */
  host: string;
  service: string;
  issuer: string;
  /** Every request so far, oldest first. */
  requests: TokenRequestRecord[];
  /** The libtrust key ID of the signing key, as used in the `kid` header. */
  keyId: string;
  stop(): Promise<void>;
}

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

/**
 * The libtrust key ID docker-registry derives from a public key: SHA-256 of its DER (PKIX) form, the first 240
 * bits in base32, as 12 groups of 4 characters joined by ':'.
 */
export function libtrustKeyId(key: KeyObject): string {
  const der = key.export({ type: 'spki', format: 'der' });
  const digest = createHash('sha256').update(der).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  return out.match(/.{4}/g)!.join(':');
}

/** Parses `repository:team/app:pull,push` (names never contain the last colon; types may). */
function parseScope(scope: string): Access | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last === first) return undefined;
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope.slice(last + 1).split(',').filter((a) => a !== ''),
  };
}

function parseBasic(header: string | undefined): { username: string; password: string } | undefined {
  const m = header && /^basic\s+(\S+)$/i.exec(header);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Starts a token server on a free loopback port. */
export async function startTokenServer(options: TokenServerOptions): Promise<TokenServer> {
  const privateKey = createPrivateKey(readFileSync(options.keyPath));
  const cert = new X509Certificate(readFileSync(options.certPath));
  const keyId = libtrustKeyId(createPublicKey(privateKey));
  const users = options.users ?? {};
  const refreshTokens = options.refreshTokens ?? {};
  const anonymous = options.anonymous ?? 'pull';
  const expiresIn = options.expiresIn ?? 300;
  const tokenField = options.tokenField ?? 'both';
  const policy: AccessPolicy =
    options.policy ??
    ((user, requested) => {
      const allowed = user !== undefined ? ['pull', 'push'] : anonymous === 'pull' ? ['pull'] : [];
      return requested.type === 'repository' ? requested.actions.filter((a) => allowed.includes(a)) : [];
    });
  const requests: TokenRequestRecord[] = [];

  const issue = (user: string | undefined, scopes: string[]): { jwt: string; granted: Access[] } => {
    const granted: Access[] = [];
    for (const s of scopes) {
      const requested = parseScope(s);
      if (!requested) continue;
      const actions = policy(user, requested);
      if (actions.length > 0) granted.push({ ...requested, actions });
    }
    const now = Math.floor(Date.now() / 1000);
    const header =
      options.keyHint === 'x5c'
        ? { typ: 'JWT', alg: 'RS256', x5c: [cert.raw.toString('base64')] }
        : { typ: 'JWT', alg: 'RS256', kid: keyId };
    const claims = {
      iss: options.issuer,
      sub: user ?? '',
      aud: options.service,
      exp: now + expiresIn,
      nbf: now - 1,
      iat: now,
      jti: randomUUID(),
      access: granted,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(input), privateKey);
    return { jwt: `${input}.${b64url(signature)}`, granted };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://token.test');
    const authorization = req.headers.authorization;
    const basic = parseBasic(authorization);
    const form = req.method === 'POST' ? Object.fromEntries(new URLSearchParams(await readBody(req))) : undefined;
    const record: TokenRequestRecord = {
      method: req.method ?? '',
      url: req.url ?? '',
      service: form?.service ?? url.searchParams.get('service') ?? undefined,
      scopes: form ? (form.scope ?? '').split(' ').filter((s) => s !== '') : url.searchParams.getAll('scope'),
      account: url.searchParams.get('account') ?? undefined,
      authorization,
      basic,
      form,
      userAgent: req.headers['user-agent'],
      user: undefined,
      status: 0,
      granted: [],
    };
    requests.push(record);
    const answer = (status: number, body: unknown): void => {
      record.status = status;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (url.pathname !== '/token') return answer(404, { errors: [{ code: 'NOT_FOUND' }] });

    let user: string | undefined;
    if (form) {
      if (form.grant_type === 'refresh_token') {
        user = form.refresh_token !== undefined ? refreshTokens[form.refresh_token] : undefined;
      } else if (form.grant_type === 'password') {
        const u = form.username ?? '';
        user = Object.hasOwn(users, u) && users[u] === form.password ? u : undefined;
      }
      if (user === undefined) return answer(401, { error: 'invalid_grant' });
    } else if (authorization !== undefined) {
      if (!basic || !Object.hasOwn(users, basic.username) || users[basic.username] !== basic.password) {
        return answer(401, { errors: [{ code: 'UNAUTHORIZED', message: 'invalid username or password' }] });
      }
      user = basic.username;
    } else if (anonymous === 'deny') {
      return answer(401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] });
    }
    record.user = user;
    const { jwt, granted } = issue(user, record.scopes);
    record.granted = granted;
    const body: Record<string, unknown> = { expires_in: expiresIn, issued_at: new Date().toISOString() };
    if (tokenField !== 'access_token') body.token = jwt;
    if (tokenField !== 'token') body.access_token = jwt;
    answer(200, body);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      res.writeHead(500);
      res.end(String(error));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  let stopped: Promise<void> | undefined;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    host: `127.0.0.1:${port}`,
    service: options.service,
    issuer: options.issuer,
    requests,
    keyId,
    stop: () =>
      (stopped ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}
