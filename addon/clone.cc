// clone3 with a function to run on a caller-provided stack, which libc does not offer. With CLONE_VM the child
// cannot return through the parent's frames (they belong to a running thread), so it starts fresh on its own stack.
#include "clone.h"

#include <sys/syscall.h>

#if defined(__x86_64__)
// long berth_clone3(struct clone_args* args, size_t size, int (*fn)(void*), void* arg)
__asm__(
    ".text\n"
    ".globl berth_clone3\n"
    ".type berth_clone3,@function\n"
    "berth_clone3:\n"
    "  mov %rcx, %r8\n"  // arg: rcx is clobbered by syscall
    "  mov %rdx, %r9\n"  // fn
    "  mov $435, %eax\n"  // SYS_clone3
    "  syscall\n"
    "  test %rax, %rax\n"
    "  jnz 1f\n"
    // child: the kernel set rsp to the new stack (or kept a private copy of ours without CLONE_VM)
    "  xor %ebp, %ebp\n"
    "  and $-16, %rsp\n"
    "  mov %r8, %rdi\n"
    "  call *%r9\n"
    "  mov %eax, %edi\n"
    "  mov $231, %eax\n"  // SYS_exit_group
    "  syscall\n"
    "  hlt\n"
    "1:\n"
    "  ret\n"
    ".size berth_clone3, .-berth_clone3\n");
#elif defined(__aarch64__)
__asm__(
    ".text\n"
    ".globl berth_clone3\n"
    ".type berth_clone3,%function\n"
    "berth_clone3:\n"
    "  mov x9, x2\n"   // fn
    "  mov x10, x3\n"  // arg
    "  mov x8, #435\n"
    "  svc #0\n"
    "  cbnz x0, 1f\n"
    "  mov x29, xzr\n"
    "  mov x0, x10\n"
    "  blr x9\n"
    "  mov x8, #94\n"  // SYS_exit_group
    "  svc #0\n"
    "1:\n"
    "  ret\n"
    ".size berth_clone3, .-berth_clone3\n");
#else
#error "berth supports x86_64 and aarch64"
#endif
