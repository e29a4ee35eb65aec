// User namespaces, parent side: writing a child's id maps, and the idmapped mounts that make a rootfs look owned
// by the container's root. What to map where is decided in TypeScript (lib/container/userns/); this only executes.
#pragma once
#include <napi.h>
#include <sys/types.h>

#include <string>

namespace berth {

// Writes /proc/<pid>/uid_map, then setgroups (when not empty), then gid_map. Returns 0, or -errno with `failed`
// naming the file.
int writeIdMaps(pid_t pid, const std::string& uidMap, const std::string& gidMap, const std::string& setgroups,
                const char** failed);

// usernsFd(uidMap, gidMap) → an fd of a fresh user namespace with these maps (to idmap mounts with).
Napi::Value UsernsFd(const Napi::CallbackInfo& info);
// idmapTree(path, usernsFd, recursive) → a detached copy of the mount tree at `path`, idmapped by the namespace.
Napi::Value IdmapTree(const Napi::CallbackInfo& info);
// readonlyTree(path) → a detached read-only, nosuid, nodev bind of `path` (not idmapped: the owners stay the host's).
Napi::Value ReadonlyTree(const Napi::CallbackInfo& info);
// overlayTree(lowers, upper, work) → a detached overlay of lower layers (mount fds or paths, top-most first).
Napi::Value OverlayTree(const Napi::CallbackInfo& info);

}  // namespace berth
