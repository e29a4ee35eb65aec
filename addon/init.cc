// berth-init: the container's init until it execs the user's program. The addon clones a child that immediately
// execs this static binary from a sealed memfd, so that between clone and execve the container's process is
// neither a copy of Node (no inherited memory, fds or threads' state) nor a host file it could write through
// /proc/self/exe (CVE-2019-5736). It reads its plan from fd 3 and reports on fd 4 (see plan.h).
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

#include "plan.h"

using namespace berth;

namespace {

[[noreturn]] void fail(uint32_t step, int err) {
  Message m{MSG_ERROR, step, err, -1};
  (void)!write(kStatusFd, &m, sizeof m);
  _exit(127);
}

}  // namespace

int main() {
  // Node's stdio is close-on-exec, so 0-2 arrive closed. Hold them with copies of the (read-only) plan fd until
  // stdio is set up: otherwise files opened during setup would get those numbers and be clobbered then. Not
  // /dev/null: a strict device filter may already forbid opening it here.
  for (int fd = 0; fd < 3; fd++) {
    if (fcntl(fd, F_GETFD) < 0 && errno == EBADF && dup(kPlanFd) < 0) fail(STEP_STDIO, errno);
  }
  struct stat st;
  if (fstat(kPlanFd, &st) != 0) fail(STEP_PLAN, errno);
  std::string bytes((size_t)st.st_size, '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = pread(kPlanFd, &bytes[done], bytes.size() - done, (off_t)done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail(STEP_PLAN, n < 0 ? errno : EIO);
    done += (size_t)n;
  }
  close(kPlanFd);
  Plan plan;
  if (!decodePlan(bytes.data(), bytes.size(), plan)) fail(STEP_PLAN, EPROTO);
  runChild(plan, kStatusFd, kStartFd);
}
