/**
 * Image references as Docker reads them: `busybox` → `docker.io/library/busybox:latest`, `host:5000/team/app:v1`,
 * `name@sha256:…`, `name:tag@sha256:…`. Parsing is strict, and a bad reference fails with the reason Docker gives.
 * @module
 */
import { BerthError } from '../errors.js';

/** A malformed image reference. */
export class InvalidReferenceError extends BerthError {
  constructor(reference: string, reason: string) {
    super('ERR_INVALID_REFERENCE', `invalid reference "${reference}": ${reason}`);
  }
}

/** The registry that unqualified names refer to. */
export const DOCKER_HUB = 'docker.io';

/** A parsed, normalized image reference. */
export interface ImageReference {
  /** Registry host (and port): `docker.io`, `localhost:5000`, `[::1]:5000`. */
  readonly domain: string;
  /** Repository path within the registry: `library/busybox`, `team/app`. */
  readonly path: string;
  /** The tag; `latest` when neither tag nor digest was given. */
  readonly tag: string | undefined;
  /** The content digest (`sha256:<64 hex>`), when pinned. */
  readonly digest: string | undefined;
  /** `domain/path`. */
  readonly repository: string;
  /** The full normalized form: `domain/path[:tag][@digest]`. */
  toString(): string;
  /** The short form Docker shows: `busybox:latest`, `team/app:v1`, `localhost:5000/app:v1`. */
  readonly familiar: string;
}

const ALNUM = '[a-z0-9]+';
const SEPARATOR = '(?:[._]|__|[-]+)';
const PATH_COMPONENT = `${ALNUM}(?:${SEPARATOR}${ALNUM})*`;
const PATH_RE = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN_RE = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:.]+\\])(?::[0-9]+)?$`);
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const SHA256_RE = /^sha256:[a-f0-9]{64}$/;
const MAX_NAME = 255;

/** Whether a digest string is well formed and, for sha256 (the only algorithm registries use), exact. */
export function isValidDigest(digest: string): boolean {
  if (!DIGEST_RE.test(digest)) return false;
  return digest.startsWith('sha256:') ? SHA256_RE.test(digest) : /^sha512:[a-f0-9]{128}$/.test(digest);
}

function splitDomain(name: string): [domain: string, path: string] {
  const slash = name.indexOf('/');
  if (slash < 0) return [DOCKER_HUB, `library/${name}`];
  const first = name.slice(0, slash);
  const rest = name.slice(slash + 1);
  // The first component is a registry when it looks like a host: a dot, a port, or localhost (Docker's rule).
  if (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase()) {
    const domain = first === 'index.docker.io' ? DOCKER_HUB : first;
    const path = domain === DOCKER_HUB && !rest.includes('/') ? `library/${rest}` : rest;
    return [domain, path];
  }
  return [DOCKER_HUB, name];
}

/** Parses and normalizes a reference. `latest` is implied when neither a tag nor a digest is given. */
export function parseReference(input: string): ImageReference {
  const fail = (reason: string): never => {
    throw new InvalidReferenceError(input, reason);
  };
  if (input.length === 0) fail('empty reference');
  if (/\s/.test(input)) fail('invalid reference format: contains whitespace');

  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isValidDigest(digest)) fail(`invalid digest "${digest}" (expected sha256:<64 hex characters>)`);
  }
  let tag: string | undefined;
  // A tag is after the last colon that follows the last slash (a colon before it belongs to a port).
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) fail(`invalid tag "${tag}"`);
  }
  if (rest.length === 0) fail('invalid reference format: missing repository name');
  if (rest.length > MAX_NAME) fail(`repository name must not be longer than ${MAX_NAME} characters`);
  const [domain, path] = splitDomain(rest);
  if (domain !== DOCKER_HUB && !DOMAIN_RE.test(domain)) fail(`invalid registry host "${domain}"`);
  if (path !== path.toLowerCase()) fail('repository name must be lowercase');
  if (!PATH_RE.test(path)) fail('invalid reference format');
  if (tag === undefined && digest === undefined) tag = 'latest';
  return makeReference(domain, path, tag, digest);
}

function makeReference(domain: string, path: string, tag: string | undefined, digest: string | undefined): ImageReference {
  const repository = `${domain}/${path}`;
  const suffix = `${tag !== undefined ? `:${tag}` : ''}${digest !== undefined ? `@${digest}` : ''}`;
  let short = repository;
  if (domain === DOCKER_HUB) short = path.startsWith('library/') && path.split('/').length === 2 ? path.slice(8) : path;
  return {
    domain,
    path,
    tag,
    digest,
    repository,
    familiar: `${short}${suffix}`,
    toString: () => `${repository}${suffix}`,
  };
}

/** The same repository pinned to `digest` (the tag is kept for display, as Docker does). */
export function withDigest(ref: ImageReference, digest: string): ImageReference {
  return makeReference(ref.domain, ref.path, ref.tag, digest);
}
