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

/**
 * v1: the lines to write, in order, each to `devices.allow` or `devices.deny`. The kernel reads a type-`a` line as
 * "every device, every access", so an `a` rule narrowed by numbers or access is written as its `c` and `b` halves.
 * (Unlike the v2 program, the v1 controller keeps an exact allow that a later wildcard deny covers: that is the
 * kernel's semantics.)
 */
export function v1DeviceLines(rules: readonly DeviceRule[]): { file: 'devices.allow' | 'devices.deny'; line: string }[] {
  const out: { file: 'devices.allow' | 'devices.deny'; line: string }[] = [];
  for (const r of rules) {
    checkRule(r);
    const file = r.allow ? 'devices.allow' : 'devices.deny';
    const type = r.type ?? 'a';
    const access = r.access ?? 'rwm';
    const numbers = `${r.major ?? '*'}:${r.minor ?? '*'}`;
    if (type === 'a' && numbers === '*:*' && access.length === 3) out.push({ file, line: 'a' });
    else for (const t of type === 'a' ? ['c', 'b'] : [type]) out.push({ file, line: `${t} ${numbers} ${access}` });
  }
  return out;
}

// eBPF encoding (struct bpf_insn: u8 code, u8 dst:4|src:4, s16 off, s32 imm).
const R0 = 0, R1 = 1, R2 = 2, R3 = 3, R4 = 4, R5 = 5;
const LDX_W = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND_K = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const RSH_K = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const MOV_X = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV_K = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JEQ_K = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JA = 0x05; // BPF_JMP | BPF_JA
const EXIT = 0x95; // BPF_JMP | BPF_EXIT

const ACCESS_BITS: Record<string, number> = { m: 1, r: 2, w: 4 }; // BPF_DEVCG_ACC_*
const TYPE_BITS = { b: 1, c: 2 } as const; // BPF_DEVCG_DEV_*

/** An instruction whose jump offset may still be a label to resolve. */
interface Insn {
  code: number;
  dst: number;
  src: number;
  imm: number;
  jump?: string;
}

function accessMask(access: string | undefined): number {
  return [...(access ?? 'rwm')].reduce((bits, ch) => bits | ACCESS_BITS[ch]!, 0);
}

/**
 * v2: an eBPF program with the rules' meaning (for each requested access bit the last matching rule decides, and
 * no match denies; an open is allowed only if every bit it asks for is). Its context is
 * struct bpf_cgroup_dev_ctx { u32 access_type (access << 16 | type); u32 major; u32 minor; }.
 */
export function deviceFilterProgram(rules: readonly DeviceRule[]): Buffer {
  rules.forEach(checkRule);
  const insns: (Insn | { label: string })[] = [
    { code: LDX_W, dst: R2, src: R1, imm: 0 },
    { code: AND_K, dst: R2, src: 0, imm: 0xffff }, // r2 = device type
    { code: LDX_W, dst: R3, src: R1, imm: 0 },
    { code: RSH_K, dst: R3, src: 0, imm: 16 }, // r3 = requested access bits
    { code: LDX_W, dst: R4, src: R1, imm: 0 }, // placeholder, fixed below to read major at offset 4
    { code: LDX_W, dst: R5, src: R1, imm: 0 }, // minor at offset 8
  ];
  const offsets = new Map<Insn, number>([[insns[4] as Insn, 4], [insns[5] as Insn, 8]]);
  const deny = (): Insn[] => [{ code: MOV_K, dst: R0, src: 0, imm: 0 }, { code: EXIT, dst: 0, src: 0, imm: 0 }];
  for (const bit of [1, 2, 4]) {
    const next = `bit${bit}`;
    // Not asked for: nothing to decide for this bit.
    insns.push({ code: MOV_X, dst: R0, src: R3, imm: 0 }, { code: AND_K, dst: R0, src: 0, imm: bit });
    insns.push({ code: JEQ_K, dst: R0, src: 0, imm: 0, jump: next });
    let decided = false;
    const relevant = [...rules].reverse().filter((r) => (accessMask(r.access) & bit) !== 0);
    relevant.forEach((r, i) => {
      if (decided) return;
      const skip = `${next}-rule${i}`;
      const type = r.type ?? 'a';
      const checks: Insn[] = [];
      if (type !== 'a') checks.push({ code: JNE_K, dst: R2, src: 0, imm: TYPE_BITS[type], jump: skip });
      if (r.major !== undefined && r.major !== null) checks.push({ code: JNE_K, dst: R4, src: 0, imm: r.major, jump: skip });
      if (r.minor !== undefined && r.minor !== null) checks.push({ code: JNE_K, dst: R5, src: 0, imm: r.minor, jump: skip });
      insns.push(...checks);
      // The last matching rule decides this bit: allow → on to the next bit; deny → done.
      if (r.allow) insns.push({ code: JA, dst: 0, src: 0, imm: 0, jump: next });
      else insns.push(...deny());
      if (checks.length > 0) insns.push({ label: skip });
      else decided = true; // matches everything: later rules would be unreachable (the verifier refuses dead code)
    });
    if (!decided) insns.push(...deny());
    insns.push({ label: next });
  }
  insns.push({ code: MOV_K, dst: R0, src: 0, imm: 1 }, { code: EXIT, dst: 0, src: 0, imm: 0 });
  return encode(insns, offsets);
}

function encode(items: readonly (Insn | { label: string })[], loadOffsets: Map<Insn, number>): Buffer {
  const labels = new Map<string, number>();
  const code: Insn[] = [];
  for (const item of items) {
    if ('label' in item) labels.set(item.label, code.length);
    else code.push(item);
  }
  const buf = Buffer.alloc(code.length * 8);
  code.forEach((insn, i) => {
    let off = loadOffsets.get(insn) ?? 0;
    if (insn.jump !== undefined) {
      const target = labels.get(insn.jump);
      if (target === undefined) throw new Error(`device filter: unresolved label ${insn.jump}`);
      off = target - i - 1;
    }
    buf.writeUInt8(insn.code, i * 8);
    buf.writeUInt8((insn.src << 4) | insn.dst, i * 8 + 1);
    buf.writeInt16LE(off, i * 8 + 2);
    buf.writeInt32LE(insn.imm | 0, i * 8 + 4);
  });
  return buf;
}
