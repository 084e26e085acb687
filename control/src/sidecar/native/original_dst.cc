// original_dst: reads the destination a connection had before iptables REDIRECT rewrote it,
// the way Envoy's original_dst listener filter does: getsockopt(SOL_IP, SO_ORIGINAL_DST) for IPv4
// and getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST) for IPv6. Node-API only, so one build works for
// every Node version.
//   originalDst(fd: number) -> { address: string, port: number, family: 4 | 6 }
// Throws an Error with `code` set to the errno name (e.g. ENOENT: the connection was not
// redirected, ENOPROTOOPT: the netfilter conntrack module is missing).
#include <node_api.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

namespace {

constexpr int kSolIp = 0;            // SOL_IP
constexpr int kSolIpv6 = 41;         // SOL_IPV6
constexpr int kSoOriginalDst = 80;   // SO_ORIGINAL_DST (linux/netfilter_ipv4.h)
constexpr int kIp6tSoOriginalDst = 80;  // IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h)

napi_value ThrowErrno(napi_env env, int err, const char* what) {
  const char* name = err == ENOENT ? "ENOENT" : err == ENOPROTOOPT ? "ENOPROTOOPT" : err == EBADF ? "EBADF"
                   : err == ENOTSOCK ? "ENOTSOCK" : err == EINVAL ? "EINVAL" : "EIO";
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, name, message);
  return nullptr;
}

napi_value OriginalDst(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 1) {
    napi_throw_type_error(env, "EINVAL", "originalDst(fd) needs a file descriptor");
    return nullptr;
  }
  int32_t fd = -1;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "EINVAL", "originalDst(fd): fd must be a non-negative integer");
    return nullptr;
  }
  sockaddr_storage local{};
  socklen_t local_len = sizeof local;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) return ThrowErrno(env, errno, "getsockname");

  sockaddr_storage dst{};
  socklen_t dst_len = sizeof dst;
  int rc = -1;
  if (local.ss_family == AF_INET6) {
    rc = getsockopt(fd, kSolIpv6, kIp6tSoOriginalDst, &dst, &dst_len);
    // An IPv4 client on a dual-stack socket: the IPv4 conntrack entry holds the answer.
    if (rc != 0) { dst_len = sizeof dst; rc = getsockopt(fd, kSolIp, kSoOriginalDst, &dst, &dst_len); }
  } else {
    rc = getsockopt(fd, kSolIp, kSoOriginalDst, &dst, &dst_len);
  }
  if (rc != 0) return ThrowErrno(env, errno, "getsockopt(SO_ORIGINAL_DST)");

  char text[INET6_ADDRSTRLEN] = {0};
  int port = 0, family = 0;
  if (dst.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&dst);
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    port = ntohs(a->sin_port);
    family = 4;
  } else if (dst.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&dst);
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
    port = ntohs(a->sin6_port);
    family = 6;
  } else {
    return ThrowErrno(env, EINVAL, "getsockopt(SO_ORIGINAL_DST) returned an unknown address family");
  }
  napi_value result, address, port_value, family_value;
  napi_create_object(env, &result);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &address);
  napi_create_int32(env, port, &port_value);
  napi_create_int32(env, family, &family_value);
  napi_set_named_property(env, result, "address", address);
  napi_set_named_property(env, result, "port", port_value);
  napi_set_named_property(env, result, "family", family_value);
  return result;
}

}  // namespace

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "originalDst", NAPI_AUTO_LENGTH, OriginalDst, nullptr, &fn);
  napi_set_named_property(env, exports, "originalDst", fn);
  return exports;
}
