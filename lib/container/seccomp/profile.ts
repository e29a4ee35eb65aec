/**
 * Seccomp profiles as users write them: Docker's JSON format (`docker run --security-opt seccomp=profile.json`) and
 * the OCI runtime spec's `linux.seccomp` (what `runc` reads from config.json). Both are validated here with zod, so
 * a bad profile is refused with the field that is wrong before anything is compiled or started.
 * @module
 */
import { z } from 'zod';
import { normalizeCapability } from '../capabilities.js';

/** Seccomp actions, by their libseccomp / OCI names. */
export const SECCOMP_ACTIONS = [
  'SCMP_ACT_KILL', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_TRAP', 'SCMP_ACT_ERRNO',
  'SCMP_ACT_TRACE', 'SCMP_ACT_ALLOW', 'SCMP_ACT_LOG', 'SCMP_ACT_NOTIFY',
] as const;
/** What a filter does with a matching syscall. `SCMP_ACT_NOTIFY` is refused: berth has no seccomp agent. */
export type SeccompAction = (typeof SECCOMP_ACTIONS)[number];

/** Architectures, by their OCI names. */
export const SECCOMP_ARCHES = [
  'SCMP_ARCH_X86', 'SCMP_ARCH_X86_64', 'SCMP_ARCH_X32', 'SCMP_ARCH_ARM', 'SCMP_ARCH_AARCH64', 'SCMP_ARCH_MIPS',
  'SCMP_ARCH_MIPS64', 'SCMP_ARCH_MIPS64N32', 'SCMP_ARCH_MIPSEL', 'SCMP_ARCH_MIPSEL64', 'SCMP_ARCH_MIPSEL64N32',
  'SCMP_ARCH_PPC', 'SCMP_ARCH_PPC64', 'SCMP_ARCH_PPC64LE', 'SCMP_ARCH_S390', 'SCMP_ARCH_S390X', 'SCMP_ARCH_PARISC',
  'SCMP_ARCH_PARISC64', 'SCMP_ARCH_RISCV64', 'SCMP_ARCH_LOONGARCH64',
] as const;
/** An architecture a filter covers (its syscall numbering and calling convention). */
export type SeccompArch = (typeof SECCOMP_ARCHES)[number];

/** Argument comparisons, by their libseccomp / OCI names. */
export const SECCOMP_OPERATORS = [
  'SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_MASKED_EQ',
] as const;
/** How an argument is compared; `SCMP_CMP_MASKED_EQ` is `(arg & value) == valueTwo`. */
export type SeccompOperator = (typeof SECCOMP_OPERATORS)[number];

/** seccomp(2) filter flags, by their OCI names. */
export const SECCOMP_FLAGS = [
  'SECCOMP_FILTER_FLAG_TSYNC', 'SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW',
  'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV',
] as const;
/** A flag for loading the filter: `LOG` logs every action but allow, `SPEC_ALLOW` keeps speculative store bypass. */
export type SeccompFlag = (typeof SECCOMP_FLAGS)[number];

/** Architecture names that Docker profiles use in `includes.arches` / `excludes.arches` (Go-style, as moby). */
export const PROFILE_ARCH_NAMES = [
  'amd64', 'x86', 'x32', 'arm', 'arm64', 'loongarch64', 'mips', 'mipsle', 'mipsel', 'mips64', 'mips64n32',
  'mipsel64', 'mipsel64n32', 'mips3l64n32', 'ppc', 'ppc64', 'ppc64le', 'riscv64', 's390', 's390x',
] as const;

/** The largest errno a filter can return (the kernel clamps larger ones to it). */
const MAX_ERRNO = 4095;

/**
 * A 64-bit unsigned argument value: a number up to 2^53-1, a bigint, or a string (`"18446744073709551615"`,
 * `"0xffffffff00000000"`) for values a JavaScript number cannot hold exactly. Kept as a number when exact, else as
 * a decimal string, so that specs stay JSON.
 */
export const uint64Value = z
  .union([
    z.number().int('must be an integer').min(0, 'must not be negative'),
    z.bigint(),
    z.string().regex(/^(0[xX][0-9a-fA-F]+|[0-9]+)$/, 'must be a decimal or 0x-prefixed hexadecimal integer'),
  ])
  .superRefine((v, ctx) => {
    if (typeof v === 'number' && !Number.isSafeInteger(v)) {
      ctx.addIssue({
        code: 'custom',
        message: 'is above 2^53-1, where JavaScript numbers lose precision: give it as a string ("0xffffffffffffffff") or a bigint',
      });
      return;
    }
    const big = BigInt(v);
    if (big < 0n || big > 0xffff_ffff_ffff_ffffn) ctx.addIssue({ code: 'custom', message: 'must fit in 64 unsigned bits' });
  })
  .transform((v): number | string => {
    const big = BigInt(v);
    return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big.toString();
  });

const errnoRet = z.number().int('must be an integer').min(0, 'must not be negative').max(MAX_ERRNO, `must be at most ${MAX_ERRNO}`);

const action = z.enum(SECCOMP_ACTIONS).refine((a) => a !== 'SCMP_ACT_NOTIFY', {
  message: 'SCMP_ACT_NOTIFY needs a seccomp agent listening on a socket, which berth does not support',
});

const flag = z.enum(SECCOMP_FLAGS).refine((f) => f !== 'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV', {
  message: 'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV only applies to SCMP_ACT_NOTIFY, which berth does not support',
});

const argSchema = z.strictObject({
  index: z.number().int().min(0, 'must be 0..5').max(5, 'must be 0..5 (a syscall has at most 6 arguments)'),
  value: uint64Value,
  valueTwo: uint64Value.optional(),
  op: z.enum(SECCOMP_OPERATORS),
});

const syscallName = z.string().regex(/^[a-z0-9_]+$/, 'must be a syscall name like "mkdir"');

const noListener = {
  listenerPath: z.undefined({ error: 'seccomp listeners (SCMP_ACT_NOTIFY agents) are not supported' }).optional(),
  listenerMetadata: z.string().optional(),
};

/** Keeps errnoRet to the actions it means something for, as runc does. */
function checkErrnoRet(rule: { action: string; errnoRet?: number | undefined }, ctx: z.RefinementCtx): void {
  if (rule.errnoRet !== undefined && rule.action !== 'SCMP_ACT_ERRNO' && rule.action !== 'SCMP_ACT_TRACE') {
    ctx.addIssue({ code: 'custom', path: ['errnoRet'], message: 'errnoRet only applies to SCMP_ACT_ERRNO and SCMP_ACT_TRACE' });
  }
}

/** `linux.seccomp` of the OCI runtime spec. Strict: an unknown field is an error, not silently ignored. */
export const ociSeccompSchema = z
  .strictObject({
    defaultAction: action,
    defaultErrnoRet: errnoRet.optional(),
    architectures: z.array(z.enum(SECCOMP_ARCHES)).optional(),
    flags: z.array(flag).optional(),
    ...noListener,
    syscalls: z
      .array(
        z
          .strictObject({
            names: z.array(syscallName).min(1, 'must name at least one syscall'),
            action,
            errnoRet: errnoRet.optional(),
            args: z.array(argSchema).optional(),
          })
          .superRefine(checkErrnoRet),
      )
      .optional(),
  })
  .superRefine((s, ctx) => checkErrnoRet({ action: s.defaultAction, errnoRet: s.defaultErrnoRet }, ctx));

/** A validated OCI `linux.seccomp`: what a container's spec records and what is compiled. */
export type OciSeccomp = z.output<typeof ociSeccompSchema>;

const capabilityList = z.array(
  z.string().refine((c) => normalizeCapability(c) !== undefined, 'unknown capability (expected a name like CAP_SYS_ADMIN)'),
);

const filterSchema = z.strictObject({
  /** Capabilities that must all be (includes) or any of which must not be (excludes) in the bounding set. */
  caps: capabilityList.optional(),
  /** Architectures (Go-style names: amd64, arm64, x86...). */
  arches: z.array(z.enum(PROFILE_ARCH_NAMES)).optional(),
  /** Kernel version `major.minor`. */
  minKernel: z.string().regex(/^\d+\.\d+$/, 'must be a kernel version like "4.8"').optional(),
});

const profileRuleSchema = z
  .strictObject({
    name: syscallName.optional(),
    names: z.array(syscallName).optional(),
    action,
    errnoRet: errnoRet.optional(),
    args: z.array(argSchema).nullish(),
    comment: z.string().optional(),
    includes: filterSchema.optional(),
    excludes: filterSchema.optional(),
  })
  .superRefine((r, ctx) => {
    if (r.name !== undefined && r.names !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['names'], message: "give either 'name' or 'names', not both" });
    } else if (r.name === undefined && !r.names?.length) {
      ctx.addIssue({ code: 'custom', path: ['names'], message: 'must name at least one syscall' });
    }
    checkErrnoRet(r, ctx);
  });

/** A seccomp profile in Docker's JSON format (moby's `profiles/seccomp`), validated. */
export const seccompProfileSchema = z
  .strictObject({
    defaultAction: action,
    defaultErrnoRet: errnoRet.optional(),
    architectures: z.array(z.enum(SECCOMP_ARCHES)).optional(),
    archMap: z
      .array(
        z.strictObject({
          architecture: z.enum(SECCOMP_ARCHES),
          subArchitectures: z.array(z.enum(SECCOMP_ARCHES)).nullish(),
        }),
      )
      .nullish(),
    flags: z.array(flag).optional(),
    ...noListener,
    syscalls: z.array(profileRuleSchema).nullish(),
  })
  .superRefine((p, ctx) => {
    if (p.architectures?.length && p.archMap?.length) {
      ctx.addIssue({ code: 'custom', path: ['archMap'], message: "give either 'architectures' or 'archMap', not both" });
    }
    checkErrnoRet({ action: p.defaultAction, errnoRet: p.defaultErrnoRet }, ctx);
  });

/** An argument condition of a seccomp rule. */
export interface SeccompArg {
  /** Which argument, 0..5. */
  index: number;
  /** Compared value (for `SCMP_CMP_MASKED_EQ`, the mask). Strings and bigints carry values above 2^53-1. */
  value: number | bigint | string;
  /** For `SCMP_CMP_MASKED_EQ`, the value the masked argument must equal. */
  valueTwo?: number | bigint | string;
  op: SeccompOperator;
}

/** When a rule of a Docker profile applies (`includes`: all must hold) or does not (`excludes`: any holds). */
export interface SeccompRuleFilter {
  /** Capabilities of the container's bounding set, e.g. `['CAP_SYS_ADMIN']`. */
  caps?: string[];
  /** Host architectures in Go-style names: `amd64`, `arm64`, `x86`, `arm`... */
  arches?: (typeof PROFILE_ARCH_NAMES)[number][];
  /** Running kernel at least `major.minor`, e.g. `'4.8'`. */
  minKernel?: string;
}

/** A rule of a Docker seccomp profile. */
export interface SeccompProfileRule {
  /** One syscall (older profiles); or use `names`. */
  name?: string;
  names?: string[];
  action: SeccompAction;
  /** The errno for `SCMP_ACT_ERRNO` (default EPERM) or the tracer's message for `SCMP_ACT_TRACE`. */
  errnoRet?: number;
  /** Conditions on arguments: all must hold, except that several on one argument each make a rule of their own. */
  args?: SeccompArg[] | null;
  comment?: string;
  includes?: SeccompRuleFilter;
  excludes?: SeccompRuleFilter;
}

/**
 * A seccomp profile in Docker's JSON format, as `docker run --security-opt seccomp=profile.json` takes it.
 *
 * ```ts
 * const profile: SeccompProfile = {
 *   defaultAction: 'SCMP_ACT_ALLOW',
 *   syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }],
 * };
 * ```
 */
export interface SeccompProfile {
  /** What every syscall no rule matches gets. */
  defaultAction: SeccompAction;
  /** The errno of an `SCMP_ACT_ERRNO` default (EPERM when absent). */
  defaultErrnoRet?: number;
  /** Architectures the filter covers besides the host's own. Not together with `archMap`. */
  architectures?: SeccompArch[];
  /** Per host architecture, the architectures to cover (Docker's default: x86_64 also covers x86 and x32). */
  archMap?: { architecture: SeccompArch; subArchitectures?: SeccompArch[] | null }[] | null;
  flags?: SeccompFlag[];
  /** Not supported (refused): berth has no seccomp agent. */
  listenerPath?: undefined;
  listenerMetadata?: string;
  syscalls?: SeccompProfileRule[] | null;
}

/** The `linux.seccomp` of an OCI runtime spec, as given (see {@link OciSeccomp} for the validated form). */
export interface OciSeccompInput {
  defaultAction: SeccompAction;
  defaultErrnoRet?: number;
  architectures?: SeccompArch[];
  flags?: SeccompFlag[];
  listenerPath?: undefined;
  listenerMetadata?: string;
  syscalls?: { names: string[]; action: SeccompAction; errnoRet?: number; args?: SeccompArg[] }[];
}

/**
 * The container option: `'default'` (Docker's default profile; also `'builtin'`), `'unconfined'` (no filter), a
 * path to a profile in Docker's JSON format, or such a profile as an object.
 */
export type SeccompOption = 'default' | 'builtin' | 'unconfined' | (string & {}) | SeccompProfile;

const seccompName = z
  .string()
  .min(1, 'must be "default", "unconfined", or the path of a profile')
  .refine((s) => !s.includes('\0'), 'must not contain NUL bytes');

/**
 * The `seccomp` container option's schema. A string is a name or a path, anything else must be a profile: the
 * profile's own errors are reported (a plain union would only say "Invalid input").
 */
export const seccompOptionSchema = z.custom<string | SeccompProfile>(() => true).transform((value, ctx) => {
  const result = typeof value === 'string' ? seccompName.safeParse(value) : seccompProfileSchema.safeParse(value);
  if (result.success) return result.data;
  for (const issue of result.error.issues) ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path });
  return z.NEVER;
});

/** A validated {@link SeccompProfile}. */
export type ValidSeccompProfile = z.output<typeof seccompProfileSchema>;

// The hand-written types above are what users read; these checks keep them and the schemas in step.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const profileMatches: Same<z.input<typeof seccompProfileSchema>, SeccompProfile> = true;
const ociMatches: Same<z.input<typeof ociSeccompSchema>, OciSeccompInput> = true;
const optionMatches: Same<z.input<typeof seccompOptionSchema>, SeccompOption> = true;
void profileMatches;
void ociMatches;
void optionMatches;
