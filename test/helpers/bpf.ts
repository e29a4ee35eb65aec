// A classic BPF interpreter with seccomp's input (struct seccomp_data), to check what a compiled filter answers
// for a syscall without loading it into the kernel.
import { decodeProgram, type SockFilter } from '../../lib/container/seccomp/bpf.js';

/** The input of a seccomp filter. */
export interface SeccompData {
  nr: number;
  arch: number;
  args?: (number | bigint)[];
}

/** Runs `program` on `data` and returns the filter's 32-bit answer (SECCOMP_RET_*). Throws on a malformed program. */
export function runFilter(program: Buffer | SockFilter[], data: SeccompData): number {
  const insns = Buffer.isBuffer(program) ? decodeProgram(program) : program;
  const mem = Buffer.alloc(64);
  mem.writeUInt32LE(data.nr >>> 0, 0);
  mem.writeUInt32LE(data.arch >>> 0, 4);
  (data.args ?? []).forEach((a, i) => mem.writeBigUInt64LE(BigInt.asUintN(64, BigInt(a)), 16 + 8 * i));
  const scratch = new Uint32Array(16);
  let A = 0;
  let X = 0;
  for (let pc = 0, steps = 0; pc < insns.length; pc++) {
    if (++steps > 100_000) throw new Error('filter does not terminate');
    const { code, jt, jf, k } = insns[pc]!;
    const cls = code & 0x07;
    const src = code & 0x08 ? X : k >>> 0;
    switch (cls) {
      case 0x00: // LD
        switch (code & 0xe0) {
          case 0x20: // ABS
            if ((code & 0x18) !== 0x00 || k + 4 > 64 || k % 4 !== 0) throw new Error(`bad load at ${pc}`);
            A = mem.readUInt32LE(k);
            break;
          case 0x00: A = k >>> 0; break; // IMM
          case 0x60: A = scratch[k]!; break; // MEM
          case 0x80: A = 64; break; // LEN
          default: throw new Error(`unsupported load ${code.toString(16)} at ${pc}`);
        }
        break;
      case 0x01: // LDX
        switch (code & 0xe0) {
          case 0x00: X = k >>> 0; break;
          case 0x60: X = scratch[k]!; break;
          case 0x80: X = 64; break;
          default: throw new Error(`unsupported ldx ${code.toString(16)} at ${pc}`);
        }
        break;
      case 0x02: scratch[k] = A; break; // ST
      case 0x03: scratch[k] = X; break; // STX
      case 0x04: { // ALU
        const op = code & 0xf0;
        const ops: Record<number, () => number> = {
          0x00: () => A + src, 0x10: () => A - src, 0x20: () => Math.imul(A, src), 0x30: () => Math.floor(A / src),
          0x40: () => A | src, 0x50: () => A & src, 0x60: () => A << src, 0x70: () => A >>> src, 0x80: () => -A,
          0x90: () => A % src, 0xa0: () => A ^ src,
        };
        const f = ops[op];
        if (!f) throw new Error(`unsupported alu ${code.toString(16)} at ${pc}`);
        A = f() >>> 0;
        break;
      }
      case 0x05: { // JMP
        const op = code & 0xf0;
        if (op === 0x00) {
          pc += k;
          break;
        }
        let taken: boolean;
        if (op === 0x10) taken = A === src;
        else if (op === 0x20) taken = A > src;
        else if (op === 0x30) taken = A >= src;
        else if (op === 0x40) taken = (A & src) !== 0;
        else throw new Error(`unsupported jump ${code.toString(16)} at ${pc}`);
        pc += taken ? jt : jf;
        break;
      }
      case 0x06: return (code & 0x18) === 0x10 ? A : k >>> 0; // RET A / RET K
      case 0x07: if (code & 0x80) A = X; else X = A; break; // MISC: TXA / TAX
    }
  }
  throw new Error('filter fell off its end');
}
