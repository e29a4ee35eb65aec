/**
 * Errors of layer application. They live next to the layer code because only it throws them; each is still a
 * {@link BerthError} with a stable `code`.
 * @module
 */
import { BerthError } from '../errors.js';

/**
 * A layer could not be applied: the archive is malformed, truncated, too big or hostile (an entry escaping the
 * snapshot, retyping its root...), or a filesystem operation failed. `entry` names the tar entry when there is
 * one. The snapshot directory is left partially written and must be discarded; nothing is written outside it.
 */
export class LayerError extends BerthError {
  /** The tar entry's name as it appears in the archive, when the failure concerns one entry. */
  readonly entry: string | undefined;
  /** The errno name of a failed filesystem operation (e.g. `ENOSPC`), when that was the cause. */
  readonly errno: string | undefined;

  /** `options.entry` is the name's bytes as a latin1 string, as the layer parser keeps names. */
  constructor(message: string, options?: { entry?: string; errno?: string; cause?: unknown }) {
    const entry = options?.entry === undefined ? undefined : displayName(options.entry);
    super('ERR_LAYER', entry === undefined ? message : `layer entry ${JSON.stringify(entry)}: ${message}`, options);
    this.entry = entry;
    this.errno = options?.errno;
  }
}

/** A byte-string name shown as UTF-8 (invalid sequences as U+FFFD). */
function displayName(bytes: string): string {
  // eslint-disable-next-line no-control-regex
  return /[^\u0000-\u00ff]/.test(bytes) ? bytes : Buffer.from(bytes, 'latin1').toString('utf8');
}
