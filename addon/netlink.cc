// rtnetlink for container networking. TypeScript (lib/network/) decides every name, address, MTU and route; this
// file only turns a list of operations into RTM_* messages on a NETLINK_ROUTE socket and reports which one failed.
//
// A netlink socket acts in the network namespace it was created in. To act inside a container's namespace, a
// short-lived dedicated thread enters (or creates) it and opens a socket there; the thread then exits, so neither
// Node's threads nor the libuv pool ever change namespace.
#include "netlink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <string>
#include <thread>
#include <vector>

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

namespace berth {
namespace {

struct NlError {
  int err;
  std::string what;     // the operation, e.g. "create veth"
  std::string message;  // the kernel's extended ack text, if any
};

// One netlink request being built: header, a fixed struct, then attributes (nests tracked by offset).
class Request {
 public:
  Request(uint16_t type, uint16_t flags) {
    buf_.resize(NLMSG_HDRLEN);
    hdr()->nlmsg_type = type;
    hdr()->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
  }
  template <typename T>
  void fixed(const T& v) {
    append(&v, sizeof v);
  }
  void attr(uint16_t type, const void* data, size_t len) {
    struct rtattr rta;
    rta.rta_type = type;
    rta.rta_len = RTA_LENGTH(len);
    append(&rta, sizeof rta);
    append(data, len);
  }
  void attrStr(uint16_t type, const std::string& s) { attr(type, s.c_str(), s.size() + 1); }
  void attrU32(uint16_t type, uint32_t v) { attr(type, &v, sizeof v); }
  size_t beginNest(uint16_t type) {
    size_t at = buf_.size();
    attr(type, nullptr, 0);
    return at;
  }
  void endNest(size_t at) { reinterpret_cast<struct rtattr*>(&buf_[at])->rta_len = buf_.size() - at; }
  struct nlmsghdr* finish(uint32_t seq) {
    hdr()->nlmsg_len = buf_.size();
    hdr()->nlmsg_seq = seq;
    return hdr();
  }

 private:
  struct nlmsghdr* hdr() { return reinterpret_cast<struct nlmsghdr*>(buf_.data()); }
  void append(const void* data, size_t len) {
    size_t at = buf_.size();
    buf_.resize(NLMSG_ALIGN(at + len));
    if (len) memcpy(&buf_[at], data, len);
  }
  std::vector<char> buf_;
};

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  // Sends `req` and reads until its acknowledgement; `onReply` sees every other message answering it.
  template <typename F>
  void transact(Request& req, const char* what, F onReply) {
    struct nlmsghdr* h = req.finish(++seq_);
    struct sockaddr_nl kernel;
    memset(&kernel, 0, sizeof kernel);
    kernel.nl_family = AF_NETLINK;
    if (sendto(fd_, h, h->nlmsg_len, 0, reinterpret_cast<struct sockaddr*>(&kernel), sizeof kernel) < 0)
      throw NlError{errno, what, ""};
    std::vector<char> buf(32768);
    for (;;) {
      ssize_t n = recv(fd_, buf.data(), buf.size(), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw NlError{errno, what, ""};
      }
      for (struct nlmsghdr* r = reinterpret_cast<struct nlmsghdr*>(buf.data()); NLMSG_OK(r, (size_t)n);
           r = NLMSG_NEXT(r, n)) {
        if (r->nlmsg_seq != seq_) continue;  // a stale answer to an earlier request
        if (r->nlmsg_type != NLMSG_ERROR) {
          onReply(r);
          continue;
        }
        auto* e = static_cast<struct nlmsgerr*>(NLMSG_DATA(r));
        if (e->error == 0) return;
        throw NlError{-e->error, what, extAckMessage(r)};
      }
    }
  }
  void transact(Request& req, const char* what) {
    transact(req, what, [](struct nlmsghdr*) {});
  }

  // The interface index of `name` in this socket's namespace.
  int index(const std::string& name) {
    auto it = indexes_.find(name);
    if (it != indexes_.end()) return it->second;
    Request req(RTM_GETLINK, 0);
    struct ifinfomsg ifi;
    memset(&ifi, 0, sizeof ifi);
    ifi.ifi_family = AF_UNSPEC;
    req.fixed(ifi);
    req.attrStr(IFLA_IFNAME, name);
    int found = 0;
    transact(req, "find interface", [&](struct nlmsghdr* r) {
      if (r->nlmsg_type == RTM_NEWLINK) found = static_cast<struct ifinfomsg*>(NLMSG_DATA(r))->ifi_index;
    });
    if (!found) throw NlError{ENODEV, "find interface", ""};
    indexes_[name] = found;
    return found;
  }
  void forget(const std::string& name) { indexes_.erase(name); }

 private:
  static std::string extAckMessage(struct nlmsghdr* r) {
    if (!(r->nlmsg_flags & NLM_F_ACK_TLVS)) return "";
    auto* e = static_cast<struct nlmsgerr*>(NLMSG_DATA(r));
    size_t off = sizeof(*e);
    if (!(r->nlmsg_flags & NLM_F_CAPPED)) off += e->msg.nlmsg_len - NLMSG_HDRLEN;
    if (NLMSG_HDRLEN + off > r->nlmsg_len) return "";
    auto* rta = reinterpret_cast<struct rtattr*>(static_cast<char*>(NLMSG_DATA(r)) + off);
    int len = (int)(r->nlmsg_len - NLMSG_HDRLEN - off);
    for (; RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
      if (rta->rta_type == NLMSGERR_ATTR_MSG)
        return std::string(static_cast<const char*>(RTA_DATA(rta)), strnlen(static_cast<const char*>(RTA_DATA(rta)), RTA_PAYLOAD(rta)));
    }
    return "";
  }
  int fd_;
  uint32_t seq_ = 0;
  std::map<std::string, int> indexes_;
};

int openRouteSocket() {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return -errno;
  int one = 1;
  // Best effort: the kernel's explanation of a failure ("Invalid MTU"...) makes a better error message.
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  struct sockaddr_nl local;
  memset(&local, 0, sizeof local);
  local.nl_family = AF_NETLINK;
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&local), sizeof local) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

enum OpKind { OP_BRIDGE, OP_VETH, OP_LINK, OP_DEL_LINK, OP_ADDR, OP_ROUTE };

struct Op {
  OpKind kind;
  std::string name;       // the interface acted on / created
  std::string peer;       // veth: the peer's name (in its namespace)
  std::string master;     // veth, link: bridge to enslave to
  int peerNsFd = -1;      // veth: the namespace the peer is created in
  uint32_t mtu = 0;       // 0 = leave
  int up = -1;            // -1 leave, 0 down, 1 up (veth: the end in this namespace; the kernel refuses the peer)
  std::string mac;        // 6 bytes or empty
  std::string peerMac;
  bool ignoreMissing = false;  // delLink: no error when it is already gone
  in_addr address{}, broadcast{}, gateway{}, dst{};
  bool hasBroadcast = false, hasGateway = false;
  uint8_t prefix = 0;  // addr: prefix length; route: destination prefix length (0 = default route)
};

void linkFlags(struct ifinfomsg& ifi, int up) {
  if (up < 0) return;
  ifi.ifi_change = IFF_UP;
  ifi.ifi_flags = up ? IFF_UP : 0;
}

void run(Socket& s, const Op& op) {
  struct ifinfomsg ifi;
  memset(&ifi, 0, sizeof ifi);
  ifi.ifi_family = AF_UNSPEC;
  switch (op.kind) {
    case OP_BRIDGE: {
      Request req(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
      linkFlags(ifi, op.up);
      req.fixed(ifi);
      req.attrStr(IFLA_IFNAME, op.name);
      if (op.mtu) req.attrU32(IFLA_MTU, op.mtu);
      if (!op.mac.empty()) req.attr(IFLA_ADDRESS, op.mac.data(), op.mac.size());
      size_t info = req.beginNest(IFLA_LINKINFO);
      req.attrStr(IFLA_INFO_KIND, "bridge");
      req.endNest(info);
      s.transact(req, "create bridge");
      return;
    }
    case OP_VETH: {
      int master = op.master.empty() ? 0 : s.index(op.master);
      Request req(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
      linkFlags(ifi, op.up);
      req.fixed(ifi);
      req.attrStr(IFLA_IFNAME, op.name);
      if (op.mtu) req.attrU32(IFLA_MTU, op.mtu);
      if (master) req.attrU32(IFLA_MASTER, master);
      if (!op.mac.empty()) req.attr(IFLA_ADDRESS, op.mac.data(), op.mac.size());
      size_t info = req.beginNest(IFLA_LINKINFO);
      req.attrStr(IFLA_INFO_KIND, "veth");
      size_t data = req.beginNest(IFLA_INFO_DATA);
      size_t peer = req.beginNest(VETH_INFO_PEER);
      struct ifinfomsg pifi;
      memset(&pifi, 0, sizeof pifi);
      pifi.ifi_family = AF_UNSPEC;
      req.fixed(pifi);
      req.attrStr(IFLA_IFNAME, op.peer);
      if (op.mtu) req.attrU32(IFLA_MTU, op.mtu);
      if (op.peerNsFd >= 0) req.attrU32(IFLA_NET_NS_FD, (uint32_t)op.peerNsFd);
      if (!op.peerMac.empty()) req.attr(IFLA_ADDRESS, op.peerMac.data(), op.peerMac.size());
      req.endNest(peer);
      req.endNest(data);
      req.endNest(info);
      s.transact(req, "create veth pair");
      return;
    }
    case OP_LINK: {
      int master = op.master.empty() ? 0 : s.index(op.master);
      Request req(RTM_NEWLINK, 0);
      linkFlags(ifi, op.up);
      ifi.ifi_index = s.index(op.name);
      req.fixed(ifi);
      if (op.mtu) req.attrU32(IFLA_MTU, op.mtu);
      if (master) req.attrU32(IFLA_MASTER, master);
      if (!op.mac.empty()) req.attr(IFLA_ADDRESS, op.mac.data(), op.mac.size());
      s.transact(req, "configure interface");
      return;
    }
    case OP_DEL_LINK: {
      Request req(RTM_DELLINK, 0);
      req.fixed(ifi);
      req.attrStr(IFLA_IFNAME, op.name);
      s.forget(op.name);
      try {
        s.transact(req, "delete interface");
      } catch (const NlError& e) {
        if (!(op.ignoreMissing && e.err == ENODEV)) throw;
      }
      return;
    }
    case OP_ADDR: {
      Request req(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
      struct ifaddrmsg ifa;
      memset(&ifa, 0, sizeof ifa);
      ifa.ifa_family = AF_INET;
      ifa.ifa_prefixlen = op.prefix;
      ifa.ifa_scope = RT_SCOPE_UNIVERSE;
      ifa.ifa_index = s.index(op.name);
      req.fixed(ifa);
      req.attr(IFA_LOCAL, &op.address, 4);
      req.attr(IFA_ADDRESS, &op.address, 4);
      if (op.hasBroadcast) req.attr(IFA_BROADCAST, &op.broadcast, 4);
      s.transact(req, "add address");
      return;
    }
    case OP_ROUTE: {
      Request req(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
      struct rtmsg rt;
      memset(&rt, 0, sizeof rt);
      rt.rtm_family = AF_INET;
      rt.rtm_dst_len = op.prefix;
      rt.rtm_table = RT_TABLE_MAIN;
      rt.rtm_protocol = RTPROT_BOOT;
      rt.rtm_scope = op.hasGateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
      rt.rtm_type = RTN_UNICAST;
      req.fixed(rt);
      if (op.prefix) req.attr(RTA_DST, &op.dst, 4);
      if (op.hasGateway) req.attr(RTA_GATEWAY, &op.gateway, 4);
      if (!op.name.empty()) req.attrU32(RTA_OIF, s.index(op.name));
      s.transact(req, "add route");
      return;
    }
  }
}

std::string strField(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

in_addr ipField(const Napi::Object& o, const char* key, bool* present) {
  in_addr a{};
  std::string s = strField(o, key);
  *present = !s.empty();
  if (*present && inet_pton(AF_INET, s.c_str(), &a) != 1)
    throw Napi::TypeError::New(o.Env(), std::string("netlink op: bad IPv4 address in ") + key);
  return a;
}

std::string macField(const Napi::Object& o, const char* key) {
  std::string s = strField(o, key);
  if (s.empty()) return s;
  unsigned b[6];
  if (sscanf(s.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
    throw Napi::TypeError::New(o.Env(), std::string("netlink op: bad MAC address in ") + key);
  std::string out(6, '\0');
  for (int i = 0; i < 6; i++) out[i] = (char)b[i];
  return out;
}

Op parseOp(const Napi::Object& o) {
  static const std::map<std::string, OpKind> kinds = {{"bridge", OP_BRIDGE}, {"veth", OP_VETH},
                                                      {"link", OP_LINK},     {"delLink", OP_DEL_LINK},
                                                      {"addr", OP_ADDR},     {"route", OP_ROUTE}};
  Op op;
  auto k = kinds.find(strField(o, "op"));
  if (k == kinds.end()) throw Napi::TypeError::New(o.Env(), "netlink op: unknown op");
  op.kind = k->second;
  op.name = strField(o, "name");
  if (op.name.size() >= IFNAMSIZ) throw Napi::TypeError::New(o.Env(), "netlink op: interface name too long");
  op.peer = strField(o, "peer");
  op.master = strField(o, "master");
  Napi::Value v = o.Get("peerNsFd");
  if (v.IsNumber()) op.peerNsFd = v.As<Napi::Number>().Int32Value();
  v = o.Get("mtu");
  if (v.IsNumber()) op.mtu = v.As<Napi::Number>().Uint32Value();
  v = o.Get("up");
  if (v.IsBoolean()) op.up = v.As<Napi::Boolean>().Value() ? 1 : 0;
  op.mac = macField(o, "mac");
  op.peerMac = macField(o, "peerMac");
  op.ignoreMissing = o.Get("ignoreMissing").ToBoolean();
  bool has = false;
  op.address = ipField(o, "address", &has);
  op.broadcast = ipField(o, "broadcast", &op.hasBroadcast);
  op.gateway = ipField(o, "gateway", &op.hasGateway);
  op.dst = ipField(o, "dst", &has);
  v = o.Get("prefix");
  if (v.IsNumber()) op.prefix = (uint8_t)v.As<Napi::Number>().Uint32Value();
  return op;
}

Napi::Error toJsError(Napi::Env env, const NlError& e, int index) {
  std::string text = e.what + ": " + strerror(e.err);
  if (!e.message.empty()) text += " (" + e.message + ")";
  Napi::Error err = Napi::Error::New(env, text);
  err.Set("errno", Napi::Number::New(env, e.err));
  err.Set("syscall", Napi::String::New(env, e.what));
  err.Set("index", Napi::Number::New(env, index));
  if (!e.message.empty()) err.Set("detail", Napi::String::New(env, e.message));
  return err;
}

// netlinkRun(fd, ops): runs the ops in order on the thread pool. fd -1: a fresh socket in this process's namespace.
class RunWorker : public Napi::AsyncWorker {
 public:
  RunWorker(Napi::Env env, int fd, std::vector<Op> ops)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), fd_(fd), ops_(std::move(ops)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    int fd = fd_;
    if (fd < 0) {
      fd = openRouteSocket();
      if (fd < 0) {
        error_ = NlError{-fd, "open netlink socket", ""};
        failed_ = true;
        return;
      }
    }
    Socket s(fd);
    for (size_t i = 0; i < ops_.size(); i++) {
      try {
        run(s, ops_[i]);
      } catch (const NlError& e) {
        error_ = e;
        index_ = (int)i;
        failed_ = true;
        break;
      }
    }
    if (fd_ < 0) close(fd);
  }
  void OnOK() override {
    if (failed_) deferred_.Reject(toJsError(Env(), error_, index_).Value());
    else deferred_.Resolve(Env().Undefined());
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  int fd_;
  std::vector<Op> ops_;
  NlError error_{0, "", ""};
  int index_ = -1;
  bool failed_ = false;
};

// Runs `body` on a thread of its own (which may change its network namespace and then ends).
template <typename F>
void onOwnThread(F body) {
  std::thread t(body);
  t.join();
}

// netnsCreate(): a new network namespace → [namespace fd, netlink socket inside it].
// netnsSocket(nsFd): a netlink socket inside an existing namespace.
class NetnsWorker : public Napi::AsyncWorker {
 public:
  NetnsWorker(Napi::Env env, int nsFd)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), nsFd_(nsFd) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    onOwnThread([this] {
      if (nsFd_ < 0) {
        if (unshare(CLONE_NEWNET) < 0) return fail(errno, "unshare network namespace");
        newNsFd_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (newNsFd_ < 0) return fail(errno, "open network namespace");
      } else if (setns(nsFd_, CLONE_NEWNET) < 0) {
        return fail(errno, "enter network namespace");
      }
      sockFd_ = openRouteSocket();
      if (sockFd_ < 0) fail(-sockFd_, "open netlink socket");
    });
    if (err_ && newNsFd_ >= 0) close(newNsFd_);
  }
  void OnOK() override {
    Napi::Env env = Env();
    if (err_) {
      deferred_.Reject(toJsError(env, NlError{err_, what_, ""}, -1).Value());
      return;
    }
    if (nsFd_ >= 0) {
      deferred_.Resolve(Napi::Number::New(env, sockFd_));
      return;
    }
    Napi::Array out = Napi::Array::New(env, 2);
    out.Set(0u, Napi::Number::New(env, newNsFd_));
    out.Set(1u, Napi::Number::New(env, sockFd_));
    deferred_.Resolve(out);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  void fail(int err, const char* what) {
    err_ = err;
    what_ = what;
  }
  Napi::Promise::Deferred deferred_;
  int nsFd_;
  int newNsFd_ = -1, sockFd_ = -1;
  int err_ = 0;
  std::string what_;
};

Napi::Value NetlinkRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsArray())
    throw Napi::TypeError::New(env, "netlinkRun(fd, ops)");
  Napi::Array list = info[1].As<Napi::Array>();
  std::vector<Op> ops;
  for (uint32_t i = 0; i < list.Length(); i++) ops.push_back(parseOp(list.Get(i).As<Napi::Object>()));
  auto* w = new RunWorker(env, info[0].As<Napi::Number>().Int32Value(), std::move(ops));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value NetnsCreate(const Napi::CallbackInfo& info) {
  auto* w = new NetnsWorker(info.Env(), -1);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value NetnsSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "netnsSocket(nsFd)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd < 0) throw Napi::TypeError::New(env, "netnsSocket(nsFd): bad fd");
  auto* w = new NetnsWorker(env, fd);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace

void NetlinkExports(Napi::Env env, Napi::Object exports) {
  exports.Set("netlinkRun", Napi::Function::New(env, NetlinkRun));
  exports.Set("netnsCreate", Napi::Function::New(env, NetnsCreate));
  exports.Set("netnsSocket", Napi::Function::New(env, NetnsSocket));
}

}  // namespace berth
