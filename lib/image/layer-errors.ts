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

  constructor(message: string, options?: { entry?: string; errno?: string; cause?: unknown }) {
    super('ERR_LAYER', options?.entry === undefined ? message : `layer entry ${JSON.stringify(options.entry)}: ${message}`, options);
    this.entry = options?.entry;
    this.errno = options?.errno;
  }
}
