/**
 * Errors of registry authentication and credential lookup. They live here rather than in `lib/errors.ts` because
 * only the image code throws them; each is still a {@link BerthError} with a stable `code`.
 * @module
 */
import { BerthError } from '../errors.js';

/**
 * A registry or its token server refused us, answered something unusable, or berth refused to send credentials
 * somewhere unsafe. The message names the registry and what to do.
 */
export class RegistryAuthError extends BerthError {
  /** The registry host (and port) the authentication was for. */
  readonly registry: string;
  /** The HTTP status the registry or token server answered, when the failure came from a response. */
  readonly status: number | undefined;

  constructor(registry: string, message: string, options?: { status?: number; cause?: unknown }) {
    super('ERR_REGISTRY_AUTH', message, options);
    this.registry = registry;
    this.status = options?.status;
  }
}

/** The Docker CLI configuration file (`config.json`) exists but is not valid. */
export class DockerConfigError extends BerthError {
  /** The file that failed to parse. */
  readonly path: string;

  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super('ERR_DOCKER_CONFIG', message, options);
    this.path = path;
  }
}

/** A Docker credential helper (`docker-credential-<name>`) is missing, failed, timed out or answered garbage. */
export class CredentialHelperError extends BerthError {
  /** The helper's program name, e.g. `docker-credential-pass`. */
  readonly helper: string;

  constructor(helper: string, message: string, options?: { cause?: unknown }) {
    super('ERR_CREDENTIAL_HELPER', message, options);
    this.helper = helper;
  }
}
