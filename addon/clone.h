#pragma once
#include <linux/sched.h>
#include <stddef.h>

extern "C" {
// Returns the child's pid in the parent, or -errno. The child runs fn(arg) and exits with its return value.
long berth_clone3(struct clone_args* args, size_t size, int (*fn)(void*), void* arg);
}
