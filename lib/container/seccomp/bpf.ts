/**
 * Classic BPF as seccomp runs it: the instruction encoding and the constants berth's own part of a filter needs
 * (dispatch.ts); libseccomp compiles the rest.
 * @module
 */
import { endianness } from 'node:os';

/** One `struct sock_filter`. */
export interface SockFilter {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** seccomp return values (the top 16 bits say what to do, the low 16 bits carry the errno or a tracer's data). */
export const SECCOMP_RET = {
  KILL_PROCESS: 0x8000_0000,
  KILL_THREAD: 0x0000_0000,
  TRAP: 0x0003_0000,
  ERRNO: 0x0005_0000,
  TRACE: 0x7ff0_0000,
  LOG: 0x7ffc_0000,
  ALLOW: 0x7fff_0000,
} as const;

/** `AUDIT_ARCH_*`: what the kernel reports as `seccomp_data.arch`. x32 shares x86_64's, with bit 30 in the nr. */
export const AUDIT_ARCH = {
  x86_64: 0xc000_003e,
  x86: 0x4000_0003,
  aarch64: 0xc000_00b7,
  arm: 0x4000_0028,
} as const;
/** The bit that marks an x32 syscall number. */
export const X32_SYSCALL_BIT = 0x4000_0000;
/** The kernel refuses programs longer than this (BPF_MAXINSNS). */
export const BPF_MAX_INSNS = 4096;

/** The classic BPF opcodes the prologue uses (BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JA, BPF_JMP|…|BPF_K, BPF_RET|BPF_K). */
export const BPF = { LD_W_ABS: 0x20, JA: 0x05, JEQ_K: 0x15, JGT_K: 0x25, JGE_K: 0x35, JSET_K: 0x45, RET_K: 0x06 } as const;

const LE = endianness() === 'LE';

/** Encodes instructions as the kernel reads them (host byte order, 8 bytes each). */
export function encodeProgram(insns: readonly SockFilter[]): Buffer {
  const out = Buffer.alloc(insns.length * 8);
  insns.forEach((ins, i) => {
    const o = i * 8;
    if (LE) {
      out.writeUInt16LE(ins.code, o);
      out.writeUInt32LE(ins.k >>> 0, o + 4);
    } else {
      out.writeUInt16BE(ins.code, o);
      out.writeUInt32BE(ins.k >>> 0, o + 4);
    }
    out.writeUInt8(ins.jt, o + 2);
    out.writeUInt8(ins.jf, o + 3);
  });
  return out;
}

/** Decodes a program (the inverse of {@link encodeProgram}). */
export function decodeProgram(buf: Buffer): SockFilter[] {
  const out: SockFilter[] = [];
  for (let o = 0; o + 8 <= buf.length; o += 8) {
    out.push({
      code: LE ? buf.readUInt16LE(o) : buf.readUInt16BE(o),
      jt: buf.readUInt8(o + 2),
      jf: buf.readUInt8(o + 3),
      k: LE ? buf.readUInt32LE(o + 4) : buf.readUInt32BE(o + 4),
    });
  }
  return out;
}
