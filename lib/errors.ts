/**
 * Errors thrown by berth. Every error is a {@link BerthError} with a stable `code` that programs can switch on;
 * the message says what went wrong and, where possible, what to do about it.
 * @module
 */

/** Base class of every error berth throws. */
export class BerthError extends Error {
  /** A stable, machine-readable identifier, e.g. `ERR_INVALID_OPTIONS`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Options or an OCI spec failed validation; `issues` lists each field and why. */
export class InvalidOptionsError extends BerthError {
  /** One entry per problem: the dotted field path and the reason. */
  readonly issues: { path: string; message: string }[];

  constructor(what: string, issues: { path: string; message: string }[]) {
    const list = issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ');
    super('ERR_INVALID_OPTIONS', `invalid ${what}: ${list}`);
    this.issues = issues;
  }
}

/** The container's init failed before the user's program started (mount, chdir, capabilities, exec...). */
export class ContainerStartError extends BerthError {
  /** The setup step that failed, e.g. `mount` or `exec`. */
  readonly step: string;
  /** The errno name, e.g. `EPERM`, `ENOENT`. */
  readonly errno: string;
  /** The path or object the step acted on, when there is one. */
  readonly target: string | undefined;
  /** The exit status Docker's CLI would use for this failure (126 not executable, 127 not found, 125 otherwise). */
  readonly exitStatus: number;

  constructor(step: string, errno: string, target: string | undefined, message: string, exitStatus: number) {
    super(
      step === 'exec' ? (exitStatus === 127 ? 'ERR_EXEC_NOT_FOUND' : 'ERR_EXEC_FAILED') : 'ERR_CONTAINER_SETUP',
      message,
    );
    this.step = step;
    this.errno = errno;
    this.target = target;
    this.exitStatus = exitStatus;
  }
}

/** No container with this id or name exists in the state root. */
export class ContainerNotFoundError extends BerthError {
  constructor(idOrName: string) {
    super('ERR_CONTAINER_NOT_FOUND', `no such container: ${idOrName}`);
  }
}

/** The operation is not valid in the container's current state (e.g. start twice, remove while running). */
export class ContainerStateError extends BerthError {
  constructor(message: string) {
    super('ERR_CONTAINER_STATE', message);
  }
}

/** A container name is already used by another container in the same state root. */
export class NameConflictError extends BerthError {
  constructor(name: string, id: string) {
    super('ERR_NAME_CONFLICT', `the container name "${name}" is already in use by container ${id}; remove or rename it`);
  }
}

/** The root filesystem given to a container does not exist or is not a directory. */
export class RootfsError extends BerthError {
  constructor(message: string) {
    super('ERR_ROOTFS', message);
  }
}

/** A cgroup could not be created, configured or removed. */
export class CgroupError extends BerthError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_CGROUP', message, options);
  }
}

/** The host lacks something berth needs (kernel feature, permission, the native addon). */
export class UnsupportedError extends BerthError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_UNSUPPORTED', message, options);
  }
}

/** The operation was aborted through its `AbortSignal`. */
export class AbortError extends BerthError {
  constructor(message = 'the operation was aborted') {
    super('ERR_ABORTED', message);
  }
}
