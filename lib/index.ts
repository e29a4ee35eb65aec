/**
 * berth: Docker's engine as a library. Run isolated containers from Node, without a daemon.
 *
 * ```ts
 * import { Container } from 'berth';
 * const { exitCode, stdout } = await Container.run({ rootfs: '/srv/busybox', cmd: ['echo', 'hello'] });
 * ```
 * @module
 */
export {
  Container,
  signalNumber,
  type ContainerInfo,
  type ExitInfo,
  type RootOptions,
  type RunResult,
  type SpecCreateOptions,
} from './container/container.js';
export { mergeEnv, type ExecExit, type ExecOptions, type ExecProcess, type ExecStdio } from './container/exec.js';
export type {
  BindMountOption,
  ByteSize,
  ContainerOptions,
  MountOption,
  NamespaceMode,
  ResourcesOption,
  StdioOption,
  TmpfsMountOption,
  UlimitOption,
} from './container/options.js';
export { parseByteSize } from './container/options.js';
export { RESTART_BACKOFF, type RestartPolicy } from './container/restart-policy.js';
export { psTable, type ContainerProcess } from './container/top.js';
export type { IdMapping, IdMaps, UsernsOption } from './container/userns/idmap.js';
export { UsernsExhaustedError, type IdRange } from './container/userns/pool.js';
export { ociSpecSchema, parseOciSpec, type OciSpec } from './container/spec.js';
export type {
  OciSeccomp,
  SeccompAction,
  SeccompArch,
  SeccompArg,
  SeccompFlag,
  SeccompOperator,
  SeccompOption,
  SeccompProfile,
  SeccompProfileRule,
  SeccompRuleFilter,
} from './container/seccomp/profile.js';
export {
  ociSeccompSchema,
  SECCOMP_ACTIONS,
  SECCOMP_ARCHES,
  SECCOMP_FLAGS,
  SECCOMP_OPERATORS,
  seccompProfileSchema,
} from './container/seccomp/profile.js';
export { DOCKER_DEFAULT_SECCOMP_PROFILE } from './container/seccomp/default-profile.js';
export { events, type BerthEvent, type EventFilters, type EventsOptions, type EventType } from './journal/events.js';
export { parseTimeInput, type TimeInput } from './journal/time.js';
export { DEFAULT_LOG_CONFIG, type LogConfig, type LogEntry, type LogsOptions } from './container/logs/json-file.js';
export type { CgroupStats, LinuxResources } from './container/cgroup/driver.js';
export type { DeviceRule } from './container/cgroup/devices.js';
export type { TerminalSize } from './container/terminal.js';
export type { Platform } from './image/platform.js';
export type { GcResult } from './image/store.js';
export type { Credentials } from './image/auth.js';
export {
  DOCKER_DEFAULT_CAPABILITIES,
  CAPABILITY_NAMES,
  type CapabilityName,
} from './container/capabilities.js';
export {
  AbortError,
  BerthError,
  CgroupError,
  ContainerNotFoundError,
  ContainerStartError,
  ContainerStateError,
  InvalidOptionsError,
  NameConflictError,
  RootfsError,
  UnsupportedError,
} from './errors.js';
export { Image, ImageInUseError, ImageNotFoundError, type ImageInfo, type ImageSummary } from './image/image.js';
export { PlatformNotFoundError, type PullEvent, type PullOptions } from './image/pull.js';
export { parseReference, InvalidReferenceError, type ImageReference } from './image/reference.js';
export { RegistryError, type RegistryOptions } from './image/registry.js';
export { RegistryAuthError } from './image/auth-errors.js';
export { DigestMismatchError, SizeMismatchError } from './image/errors.js';
export {
  Network,
  DEFAULT_NETWORK,
  type NetworkCreateOptions,
  type NetworkInfo,
} from './network/network.js';
export type { NetworkAttachment, PortOption } from './network/options.js';
export type { PortBinding } from './network/ports.js';
export type { ContainerNetworkRecord } from './network/container-network.js';
export type { EndpointRecord } from './network/endpoint.js';
export {
  AddressExhaustedError,
  EndpointExistsError,
  NetworkExistsError,
  NetworkInUseError,
  NetworkNotFoundError,
  NetworkSetupError,
  PortBindError,
  SubnetConflictError,
} from './network/errors.js';
