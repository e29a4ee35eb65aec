// berth-docker-init: the small init a container gets with `--init` (Docker's docker-init), bind-mounted read-only
// at /sbin/docker-init and run as PID 1: `/sbin/docker-init -- PROGRAM [ARG...]`.
//
// What it does, and why:
//  - starts PROGRAM as its only child, in a process group of its own that becomes the terminal's foreground group
//    when stdin is a terminal (so ^C and job control reach the program, not the init);
//  - forwards every signal it receives to that child: PID 1 of a pid namespace gets no default signal actions, so
//    a program that never installed a SIGTERM handler would otherwise ignore `stop` until SIGKILL;
//  - reaps every process that ends up as its child, including orphans re-parented to it, so no zombie piles up;
//  - exits with the child's status (128 + N when signal N killed it), as a shell reports it. The kernel then ends
//    whatever else runs in the namespace.
//
// It runs inside arbitrary images, so it is linked statically and needs nothing from the image. It is written from
// that behaviour alone (no code taken from tini or others) and uses a handful of libc calls only: it is a normal
// single-threaded program, not code running between clone() and execve() like berth-init.
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <initializer_list>

namespace {

// Signal sets as the kernel takes them: 64 bits, signal N at bit N-1. glibc's sigset_t helpers refuse the two
// signals glibc keeps for itself (32, 33); the raw system calls below block and wait for all 64.
using SignalMask = uint64_t;
constexpr SignalMask bit(int sig) { return SignalMask(1) << (sig - 1); }

void writeAll(const char* s) {
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t w = write(STDERR_FILENO, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

// One diagnostic line on stderr: "berth-init: <a><b><c><d>\n".
void complain(const char* a, const char* b = "", const char* c = "", const char* d = "") {
  for (const char* part : {"berth-init: ", a, b, c, d, "\n"}) writeAll(part);
}

int setSignalMask(const SignalMask* mask, SignalMask* old) {
  return (int)syscall(SYS_rt_sigprocmask, SIG_SETMASK, mask, old, sizeof(SignalMask));
}

// The exit status a shell would report for a wait status.
int shellStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

// Runs in the forked child: own process group, terminal handed over, original signal mask back, then exec.
[[noreturn]] void runProgram(char** argv, const SignalMask* originalMask) {
  setpgid(0, 0);
  // Still blocked here, SIGTTOU cannot stop us for changing the foreground group from a background one. Without a
  // terminal (or one that is not our session's) this fails, which is fine.
  if (isatty(STDIN_FILENO)) tcsetpgrp(STDIN_FILENO, getpid());
  setSignalMask(originalMask, nullptr);
  execvp(argv[0], argv);
  int e = errno;
  complain("exec ", argv[0], ": ", strerror(e));
  // A shell's convention: 127 when there is no such program, 126 when it exists but cannot be run.
  _exit(e == ENOENT ? 127 : 126);
}

}  // namespace

int main(int argc, char** argv) {
  int first = 1;
  if (first < argc && strcmp(argv[first], "--") == 0) first++;
  if (first >= argc) {
    complain("usage: ", argc > 0 ? argv[0] : "docker-init", " [--] PROGRAM [ARG...]");
    return 2;
  }

  // Everything is blocked and then taken with sigtimedwait: nothing runs asynchronously, and a blocked signal is
  // queued even for a namespace's PID 1 (the kernel drops only the ones an init leaves at their default action).
  // Faults of the init's own code are left unblocked so that a bug kills it rather than hanging the container.
  SignalMask all = ~SignalMask(0), original = 0;
  for (int s : {SIGFPE, SIGILL, SIGSEGV, SIGBUS, SIGABRT, SIGTRAP, SIGSYS}) all &= ~bit(s);
  if (setSignalMask(&all, &original) < 0) {
    complain("cannot block signals: ", strerror(errno));
    return 1;
  }
  // Children must become zombies we can reap and report; an inherited SIG_IGN would have the kernel reap them.
  signal(SIGCHLD, SIG_DFL);
  // Outside a new pid namespace (not PID 1), orphans of the program would go to the real init: ask for them.
  if (getpid() != 1) prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

  pid_t child = fork();
  if (child < 0) {
    complain("fork: ", strerror(errno));
    return 1;
  }
  if (child == 0) runProgram(argv + first, &original);

  for (;;) {
    siginfo_t info;
    int sig = (int)syscall(SYS_rt_sigtimedwait, &all, &info, nullptr, sizeof(SignalMask));
    if (sig < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      complain("waiting for signals: ", strerror(errno));
      return 1;
    }
    if (sig != SIGCHLD) {
      // Forwarded to the program only (not its group), as `docker stop` / `docker kill` expect. A child that
      // already exited is reaped below.
      kill(child, sig);
      continue;
    }
    // One SIGCHLD may stand for several exits: reap until nothing is left to reap right now.
    int exitStatus = -1;
    for (;;) {
      int status;
      pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid < 0 && errno == EINTR) continue;
      if (pid <= 0) break;
      if (pid == child) exitStatus = shellStatus(status);
    }
    if (exitStatus >= 0) return exitStatus;
  }
}
