/**
 * Device access rules (OCI `linux.resources.devices`): which device nodes a container may create (m), read (r)
 * and write (w). On cgroup v1 they become lines in `devices.deny`/`devices.allow`; on v2 an eBPF program of type
 * BPF_PROG_TYPE_CGROUP_DEVICE attached to the container's cgroup, generated here and loaded by the addon.
 * @module
 */
import { CgroupError } from '../../errors.js';

/** One rule, OCI form. `major`/`minor` absent or null = any (`*`). Later rules override earlier ones. */
export interface DeviceRule {
  allow: boolean;
  /** `a` (all), `c` (char) or `b` (block); default `a`. */
  type?: 'a' | 'c' | 'b';
  major?: number | null;
  minor?: number | null;
  /** Any of `r`, `w`, `m`; default `rwm`. */
  access?: string;
}

/** Docker's default rules: nothing but mknod of any node, the default devices, and pseudo-terminals. */
export const DOCKER_DEFAULT_DEVICE_RULES: readonly DeviceRule[] = [
  { allow: false, access: 'rwm' },
  { allow: true, type: 'c', access: 'm' },
  { allow: true, type: 'b', access: 'm' },
  { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }, // null
  { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' }, // zero
  { allow: true, type: 'c', major: 1, minor: 7, access: 'rwm' }, // full
  { allow: true, type: 'c', major: 1, minor: 8, access: 'rwm' }, // random
  { allow: true, type: 'c', major: 1, minor: 9, access: 'rwm' }, // urandom
  { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' }, // tty
  { allow: true, type: 'c', major: 5, minor: 1, access: 'rwm' }, // console
  { allow: true, type: 'c', major: 5, minor: 2, access: 'rwm' }, // ptmx
  { allow: true, type: 'c', major: 136, access: 'rwm' }, // pts/*
];

function checkRule(r: DeviceRule): void {
  if (r.access !== undefined && !/^[rwm]{1,3}$/.test(r.access)) {
    throw new CgroupError(`cgroup: invalid device rule access "${r.access}" (use a combination of r, w, m)`);
  }
  for (const n of [r.major, r.minor]) {
    if (n !== undefined && n !== null && (!Number.isInteger(n) || n < 0 || n > 0xfffff)) {
      throw new CgroupError(`cgroup: invalid device number ${n} in a device rule`);
    }
  }
}

/** v1: the lines to write, in order, each to `devices.allow` or `devices.deny`. */
export function v1DeviceLines(rules: readonly DeviceRule[]): { file: 'devices.allow' | 'devices.deny'; line: string }[] {
  return rules.map((r) => {
    checkRule(r);
    const type = r.type ?? 'a';
    const line = type === 'a' ? 'a' : `${type} ${r.major ?? '*'}:${r.minor ?? '*'} ${r.access ?? 'rwm'}`;
    return { file: r.allow ? 'devices.allow' : 'devices.deny', line };
  });
}

// eBPF encoding (struct bpf_insn: u8 code, u8 dst:4|src:4, s16 off, s32 imm).
const R0 = 0, R1 = 1, R2 = 2, R3 = 3, R4 = 4, R5 = 5;
const LDX_W = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND_K = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const RSH_K = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const MOV_X = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV_K = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const EXIT = 0x95; // BPF_JMP | BPF_EXIT

const ACCESS_BITS: Record<string, number> = { m: 1, r: 2, w: 4 }; // BPF_DEVCG_ACC_*
const TYPE_BITS = { b: 1, c: 2 } as const; // BPF_DEVCG_DEV_*

type Insn = [code: number, dst: number, src: number, off: number, imm: number];

/**
 * v2: an eBPF program equivalent to the rules (the last matching rule decides; no match denies). Its context is
 * struct bpf_cgroup_dev_ctx { u32 access_type (access << 16 | type); u32 major; u32 minor; }.
 */
export function deviceFilterProgram(rules: readonly DeviceRule[]): Buffer {
  const insns: Insn[] = [
    [LDX_W, R2, R1, 0, 0],
    [AND_K, R2, 0, 0, 0xffff], // r2 = device type
    [LDX_W, R3, R1, 0, 0],
    [RSH_K, R3, 0, 0, 16], // r3 = requested access
    [LDX_W, R4, R1, 4, 0], // r4 = major
    [LDX_W, R5, R1, 8, 0], // r5 = minor
  ];
  // Evaluated last rule first, so the first match is the rule that would have won.
  for (const r of [...rules].reverse()) {
    checkRule(r);
    const checks: Insn[] = [];
    const type = r.type ?? 'a';
    if (type !== 'a') checks.push([JNE_K, R2, 0, 0, TYPE_BITS[type]]);
    const access = [...(r.access ?? 'rwm')].reduce((bits, ch) => bits | ACCESS_BITS[ch]!, 0);
    if (access !== 7) checks.push([MOV_X, R0, R3, 0, 0], [AND_K, R0, 0, 0, ~access & 7], [JNE_K, R0, 0, 0, 0]);
    if (r.major !== undefined && r.major !== null) checks.push([JNE_K, R4, 0, 0, r.major]);
    if (r.minor !== undefined && r.minor !== null) checks.push([JNE_K, R5, 0, 0, r.minor]);
    // Each JNE skips to the next rule: past the remaining checks and this rule's two-instruction verdict.
    checks.forEach((insn, i) => {
      if (insn[0] === JNE_K) insn[3] = checks.length - i - 1 + 2;
    });
    insns.push(...checks, [MOV_K, R0, 0, 0, r.allow ? 1 : 0], [EXIT, 0, 0, 0, 0]);
    // A rule that matches everything decides alone: anything after it would be unreachable (the verifier refuses).
    if (checks.length === 0) return encode(insns);
  }
  insns.push([MOV_K, R0, 0, 0, 0], [EXIT, 0, 0, 0, 0]);
  return encode(insns);
}

function encode(insns: readonly Insn[]): Buffer {
  const buf = Buffer.alloc(insns.length * 8);
  insns.forEach(([code, dst, src, off, imm], i) => {
    buf.writeUInt8(code, i * 8);
    buf.writeUInt8((src << 4) | dst, i * 8 + 1);
    buf.writeInt16LE(off, i * 8 + 2);
    buf.writeInt32LE(imm | 0, i * 8 + 4);
  });
  return buf;
}
