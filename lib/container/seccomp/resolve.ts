/**
 * Docker profile → OCI `linux.seccomp` for one container, as moby does before it hands the spec to runc: the
 * architectures come from the `archMap` entry of this host's architecture, and each rule's `includes` / `excludes`
 * are decided against the container's capabilities (its bounding set), the host architecture and the kernel
 * version. The result holds only plain rules, and is what the container's spec records.
 * @module
 */
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { InvalidOptionsError } from '../../errors.js';
import { normalizeCapability } from '../capabilities.js';
import { toInvalidOptions } from '../options.js';
import { nameForCache, nativeSeccompArch } from './compile.js';
import { DOCKER_DEFAULT_SECCOMP_PROFILE, DOCKER_DEFAULT_SECCOMP_PROFILE_DIGEST } from './default-profile.js';
import {
  ociSeccompSchema, seccompProfileSchema, type OciSeccomp, type SeccompArch, type SeccompOption,
  type ValidSeccompProfile,
} from './profile.js';

/** What a profile's conditions are decided against. */
export interface ProfileContext {
  /** The container's bounding capabilities, canonical names (`CAP_SYS_ADMIN`). */
  capabilities: readonly string[];
  /** The host architecture as seccomp names it. */
  arch: SeccompArch;
  /** The running kernel's `[major, minor]`. */
  kernel: readonly [number, number];
}

/** The names Docker profiles use for a host architecture in `includes.arches` (moby's libseccomp-style names). */
const PROFILE_ARCH: Partial<Record<SeccompArch, string>> = {
  SCMP_ARCH_X86_64: 'amd64',
  SCMP_ARCH_X86: 'x86',
  SCMP_ARCH_AARCH64: 'arm64',
  SCMP_ARCH_ARM: 'arm',
  SCMP_ARCH_PPC64LE: 'ppc64le',
  SCMP_ARCH_S390X: 's390x',
  SCMP_ARCH_RISCV64: 'riscv64',
  SCMP_ARCH_LOONGARCH64: 'loongarch64',
};

let kernelCache: [number, number] | undefined;

/** The running kernel's major and minor version. */
export function kernelVersion(): [number, number] {
  if (!kernelCache) {
    const m = /^(\d+)\.(\d+)/.exec(release());
    kernelCache = m ? [Number(m[1]), Number(m[2])] : [0, 0];
  }
  return kernelCache;
}

function atLeast(kernel: readonly [number, number], version: string): boolean {
  const [major, minor] = version.split('.').map(Number) as [number, number];
  return kernel[0] > major || (kernel[0] === major && kernel[1] >= minor);
}

/** Turns a validated Docker profile into the OCI filter for a container with `ctx`'s capabilities on this host. */
export function profileToOci(p: ValidSeccompProfile, ctx: ProfileContext): OciSeccomp {
  const caps = new Set(ctx.capabilities.map((c) => normalizeCapability(c) ?? c));
  const arch = PROFILE_ARCH[ctx.arch] ?? ctx.arch;
  let architectures: SeccompArch[] | undefined = p.architectures?.length ? [...p.architectures] : undefined;
  const mapped = p.archMap?.find((a) => a.architecture === ctx.arch);
  if (mapped) architectures = [mapped.architecture, ...(mapped.subArchitectures ?? [])];

  const syscalls: NonNullable<OciSeccomp['syscalls']> = [];
  for (const rule of p.syscalls ?? []) {
    const ex = rule.excludes;
    if (ex) {
      if (ex.arches?.includes(arch as never)) continue;
      if (ex.caps?.some((c) => caps.has(normalizeCapability(c)!))) continue;
      if (ex.minKernel && atLeast(ctx.kernel, ex.minKernel)) continue;
    }
    const inc = rule.includes;
    if (inc) {
      if (inc.arches?.length && !inc.arches.includes(arch as never)) continue;
      if (inc.caps?.some((c) => !caps.has(normalizeCapability(c)!))) continue;
      if (inc.minKernel && !atLeast(ctx.kernel, inc.minKernel)) continue;
    }
    // A frozen profile's arrays are shared, not copied (Docker's names 360 syscalls in one rule).
    const frozen = Object.isFrozen(rule);
    const entry: NonNullable<OciSeccomp['syscalls']>[number] = {
      names: rule.name !== undefined ? [rule.name] : frozen ? rule.names! : [...rule.names!],
      action: rule.action,
    };
    if (rule.errnoRet !== undefined) entry.errnoRet = rule.errnoRet;
    if (rule.args?.length) entry.args = frozen ? rule.args : rule.args.map((a) => ({ ...a }));
    syscalls.push(entry);
  }

  const out: OciSeccomp = { defaultAction: p.defaultAction };
  if (p.defaultErrnoRet !== undefined) out.defaultErrnoRet = p.defaultErrnoRet;
  if (architectures) out.architectures = architectures;
  if (p.flags?.length) out.flags = [...p.flags];
  out.syscalls = syscalls;
  return out;
}

/** Validates a Docker profile (from a file or an object); `what` names it in the error. */
export function parseSeccompProfile(input: unknown, what = 'seccomp profile'): ValidSeccompProfile {
  const result = seccompProfileSchema.safeParse(input);
  if (!result.success) throw toInvalidOptions(what, result.error);
  return result.data;
}

/** Validates an OCI `linux.seccomp`. */
export function parseOciSeccomp(input: unknown): OciSeccomp {
  const result = ociSeccompSchema.safeParse(input);
  if (!result.success) throw toInvalidOptions('linux.seccomp', result.error);
  return result.data;
}

let defaultProfile: ValidSeccompProfile | undefined;

/**
 * Docker's default profile. It is our own constant, already in validated form (test/seccomp.test.ts checks that
 * validating it changes nothing), so it skips zod: a first container does not pay for warming the schema up.
 */
export function defaultSeccompProfile(): ValidSeccompProfile {
  defaultProfile ??= deepFreeze(DOCKER_DEFAULT_SECCOMP_PROFILE as ValidSeccompProfile);
  return defaultProfile;
}

/** Profiles read from files, by content: an unchanged file is validated once and shares cached filters. */
const fileProfiles = new Map<string, ValidSeccompProfile>();
/** Resolved filters per profile, by capability set: the same object for the same container shape. */
const resolved = new WeakMap<ValidSeccompProfile, Map<string, OciSeccomp>>();

function readProfileFile(path: string): ValidSeccompProfile {
  const file = resolvePath(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new InvalidOptionsError('container options', [{ path: 'seccomp', message: `cannot read the seccomp profile ${file}: ${code}` }]);
  }
  const cached = fileProfiles.get(text);
  if (cached) return cached;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new InvalidOptionsError('container options', [{ path: 'seccomp', message: `the seccomp profile ${file} is not valid JSON: ${(e as Error).message}` }]);
  }
  const profile = deepFreeze(parseSeccompProfile(json, `seccomp profile ${file}`));
  if (fileProfiles.size >= 32) fileProfiles.delete(fileProfiles.keys().next().value!);
  fileProfiles.set(text, profile);
  return profile;
}

/**
 * The `linux.seccomp` for a container created from options: Docker's default profile unless the option says
 * `'unconfined'` (then `undefined`: no filter), names a profile file, or is a profile. `capabilities` is the
 * container's final bounding set, which the profile's capability conditions are decided against.
 */
export function seccompForOptions(option: string | ValidSeccompProfile | undefined, capabilities: readonly string[]): OciSeccomp | undefined {
  if (option === 'unconfined') return undefined;
  let profile: ValidSeccompProfile;
  if (option === undefined || option === 'default' || option === 'builtin') profile = defaultSeccompProfile();
  else if (typeof option === 'string') profile = readProfileFile(option);
  else profile = option;
  const key = [...capabilities].sort().join(',');
  let perCaps = resolved.get(profile);
  if (!perCaps) resolved.set(profile, (perCaps = new Map()));
  let oci = perCaps.get(key);
  if (!oci) {
    const arch = nativeSeccompArch();
    const kernel = kernelVersion();
    oci = deepFreeze(profileToOci(profile, { capabilities, arch, kernel }));
    perCaps.set(key, oci);
    // Docker's profile resolved for a capability set on this host: a short name for the compiled-program cache.
    if (profile === defaultSeccompProfile()) {
      nameForCache(oci, `docker-default ${DOCKER_DEFAULT_SECCOMP_PROFILE_DIGEST} caps ${key} ${arch} kernel ${kernel.join('.')}`);
    }
  }
  return oci;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
