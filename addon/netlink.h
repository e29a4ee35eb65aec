// rtnetlink primitives for container networking (addon/netlink.cc): network namespaces, bridges, veth pairs,
// addresses, routes. They execute lists of operations decided in TypeScript (lib/network/); no names, addresses or
// defaults are chosen here.
#pragma once
#include <napi.h>

namespace berth {

// Adds netnsCreate, netnsSocket, netlinkRun to the addon's exports.
void NetlinkExports(Napi::Env env, Napi::Object exports);

}  // namespace berth
