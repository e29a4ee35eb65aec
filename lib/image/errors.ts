/**
 * Errors of the image store: content that does not match its descriptor, blobs that are missing, a layout that
 * cannot be read, a store lock that cannot be taken. Each has a stable `code`, like every {@link BerthError}.
 * @module
 */
import { BerthError } from '../errors.js';

/** A digest string is malformed. Refused before it can become a path or a URL (CVE-2024-3727). */
export class InvalidDigestError extends BerthError {
  /** The digest as given. */
  readonly digest: string;

  constructor(digest: string) {
    // JSON.stringify so control characters or path tricks in a hostile digest show up literally in logs.
    super('ERR_INVALID_DIGEST', `invalid digest ${JSON.stringify(digest)} (expected sha256:<64 lowercase hex characters>)`);
    this.digest = digest;
  }
}

/** Content hashed to something other than the digest it was announced with. Nothing was stored. */
export class DigestMismatchError extends BerthError {
  /** The digest the descriptor announced. */
  readonly expected: string;
  /** The digest of the bytes that actually arrived. */
  readonly actual: string;

  constructor(expected: string, actual: string) {
    super('ERR_DIGEST_MISMATCH', `content digest mismatch: expected ${expected}, got ${actual}; nothing was stored`);
    this.expected = expected;
    this.actual = actual;
  }
}

/** Content has a size other than the one it was announced (or recorded) with. */
export class SizeMismatchError extends BerthError {
  /** The blob's digest. */
  readonly digest: string;
  /** The size the descriptor announced, in bytes. */
  readonly expected: number;
  /**
   * The size seen, in bytes. When a stream overran the announced size it was cut off there, so this is only a
   * lower bound (see `overrun`).
   */
  readonly actual: number;
  /** True when more bytes than announced arrived and reading stopped early. */
  readonly overrun: boolean;

  constructor(digest: string, expected: number, actual: number, options: { overrun?: boolean; stored?: boolean } = {}) {
    const seen = options.overrun ? `more than ${expected} bytes arrived (stopped at ${actual})` : `got ${actual} bytes`;
    const tail = options.stored ? 'the stored blob is damaged; remove the image and pull it again' : 'nothing was stored';
    super('ERR_SIZE_MISMATCH', `size mismatch for ${digest}: expected ${expected} bytes, ${seen}; ${tail}`);
    this.digest = digest;
    this.expected = expected;
    this.actual = actual;
    this.overrun = options.overrun ?? false;
  }
}

/** The store has no blob with this digest. */
export class BlobNotFoundError extends BerthError {
  /** The digest looked up. */
  readonly digest: string;

  constructor(digest: string) {
    super('ERR_BLOB_NOT_FOUND', `blob ${digest} is not in the image store`);
    this.digest = digest;
  }
}

/** The OCI layout on disk is malformed (oci-layout, index.json or a manifest cannot be read). */
export class StoreLayoutError extends BerthError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_STORE_LAYOUT', message, options);
  }
}

/** The store's index lock could not be taken in time: another process holds it. */
export class StoreLockTimeoutError extends BerthError {
  /** The lock file. */
  readonly lockPath: string;

  constructor(lockPath: string, waitedMs: number, holder: string | undefined) {
    const who = holder ? ` (last taken by pid ${holder})` : '';
    super(
      'ERR_STORE_LOCKED',
      `timed out after ${waitedMs} ms waiting for the image store lock ${lockPath}${who}; ` +
        'another process is updating the store: retry, or stop the process that holds it',
    );
    this.lockPath = lockPath;
  }
}
