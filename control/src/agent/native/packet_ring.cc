// packet_ring: the agent's live capture. One AF_PACKET socket (SOCK_DGRAM: frames start at the IP
// header, the kernel states each frame's packet type and protocol) with a TPACKET_V3 receive ring
// mapped into the process, a classic BPF program attached before the socket is bound (so no
// unfiltered frame ever enters the ring), and a reader thread: when the kernel retires a block, the
// thread copies its frames as records into 1 MiB chunks of a queue and gives the block straight
// back to the kernel; the JavaScript thread, woken through a libuv async handle, takes the chunks
// and hands them to JavaScript. The thread does nothing but copy, so the kernel ring drains at
// memcpy speed even while JavaScript is busy (GC, a burst, a CPU-starved node); the queue is
// bounded by one byte budget shared by every socket of the process (setQueueLimit), and records
// that do not fit are counted (queueDrops), never silently lost.
//
// TPACKET_V3 packs frames of any length into large blocks, so a ring of N MiB holds N MiB of DNS
// (thousands of answers), unlike a TPACKET_V2 ring of fixed 64 KiB slots. Kernel counters come from
// getsockopt(PACKET_STATISTICS), which resets them on each read: they are accumulated here.
//
//   open(ifname, filter, blockBytes, blockCount, retireMs, out, onRecords) -> handle
//     ifname "" = every interface; filter = struct sock_filter[] bytes (host order);
//     out: a Buffer of at least 1 MiB; onRecords(nbytes) is called with `out` holding records:
//       u32 capLen, u32 origLen, u32 ifindex, u32 sec, u32 nsec, u16 pktType, u16 ethProto,
//       capLen bytes of packet (from the IP header), padded to 4 bytes. Host byte order.
//   stats(handle) -> { packets, drops, freezes, queueDrops }   (cumulative since open)
//   setQueueLimit(bytes)   the shared queue budget (default 64 MiB)
//   close(handle)
//   ifName(index) -> string | undefined
// Errors carry `code` = the errno name.
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <atomic>
#include <deque>
#include <mutex>
#include <thread>
#include <memory>
#include <vector>

namespace {

constexpr size_t kRecordHeader = 24;
constexpr size_t kChunkBytes = 1 << 20;

std::atomic<size_t> g_queue_limit{64u << 20};
std::atomic<size_t> g_queued{0};

struct Chunk {
  std::unique_ptr<uint8_t[]> bytes;  // kChunkBytes, not zero-filled
  size_t used = 0;
};

/** Chunks kept for reuse per socket: a busy ring allocates none, an idle one holds little. */
constexpr size_t kSpareChunks = 4;

struct Ring {
  int fd = -1;
  int wake_fd = -1;
  uint8_t* map = nullptr;
  size_t map_len = 0;
  uint32_t block_bytes = 0;
  uint32_t block_count = 0;
  uint32_t next_block = 0;  // reader thread only
  std::thread reader;
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::deque<Chunk> ready;  // guarded by mu
  std::vector<std::unique_ptr<uint8_t[]>> spare;  // guarded by mu
  std::atomic<uint64_t> queue_drops{0};
  uv_async_t wake{};
  napi_env env = nullptr;
  napi_ref callback = nullptr;
  napi_ref out_ref = nullptr;
  napi_async_context async = nullptr;
  uint8_t* out = nullptr;
  size_t out_len = 0;
  uint64_t packets = 0, drops = 0, freezes = 0;  // JS thread only
  bool closed = false;     // close() or finalization began: no more callbacks, thread joined
  bool uv_done = false;    // libuv released the async handle
  bool finalized = false;  // the JS handle was collected
};

const char* ErrnoName(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENODEV: return "ENODEV";
    case ENXIO: return "ENXIO";
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case EBADF: return "EBADF";
    case ENETDOWN: return "ENETDOWN";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EBUSY: return "EBUSY";
    default: return "EIO";
  }
}

napi_value ThrowErrno(napi_env env, int err, const char* what) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, ErrnoName(err), message);
  return nullptr;
}

napi_value ThrowType(napi_env env, const char* message) {
  napi_throw_type_error(env, "EINVAL", message);
  return nullptr;
}

void ReadKernelStats(Ring* r) {
  if (r->fd < 0) return;
  tpacket_stats_v3 st{};
  socklen_t len = sizeof st;
  if (getsockopt(r->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) {
    // tp_packets counts every frame the filter accepted, dropped ones included.
    r->packets += st.tp_packets;
    r->drops += st.tp_drops;
    r->freezes += st.tp_freeze_q_cnt;
  }
}

void OnAsyncClosed(uv_handle_t* handle) {
  auto* r = static_cast<Ring*>(handle->data);
  r->uv_done = true;
  if (r->finalized) delete r;
}

void CloseRing(Ring* r) {
  if (r->closed) return;
  ReadKernelStats(r);
  r->closed = true;
  r->stop.store(true);
  uint64_t one = 1;
  if (write(r->wake_fd, &one, sizeof one) < 0) { /* the thread also wakes within 100 ms */ }
  if (r->reader.joinable()) r->reader.join();
  if (r->map) munmap(r->map, r->map_len);
  r->map = nullptr;
  close(r->fd);
  close(r->wake_fd);
  r->fd = r->wake_fd = -1;
  {
    std::lock_guard<std::mutex> lock(r->mu);
    for (const Chunk& c : r->ready) g_queued.fetch_sub(c.used);
    r->ready.clear();
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&r->wake), OnAsyncClosed);
}

void Deliver(Ring* r, size_t nbytes) {
  if (nbytes == 0 || r->closed) return;
  napi_env env = r->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, recv, arg, result;
  napi_get_reference_value(env, r->callback, &cb);
  napi_get_undefined(env, &recv);
  napi_create_uint32(env, static_cast<uint32_t>(nbytes), &arg);
  napi_callback_scope cscope;
  napi_value resource;
  napi_create_object(env, &resource);
  napi_open_callback_scope(env, resource, r->async, &cscope);
  napi_status s = napi_call_function(env, recv, cb, 1, &arg, &result);
  napi_close_callback_scope(env, cscope);
  if (s == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
  napi_close_handle_scope(env, scope);
}

/**
 * Reader thread: copies every frame of every block the kernel has handed over into the queue,
 * gives each block back at once, and wakes the JavaScript thread. Returns whether it queued any.
 */
bool DrainBlocks(Ring* r) {
  bool queued = false;
  for (uint32_t seen = 0; seen < r->block_count; seen++) {
    auto* block = reinterpret_cast<tpacket_block_desc*>(r->map + static_cast<size_t>(r->next_block) * r->block_bytes);
    if ((__atomic_load_n(&block->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) == 0) break;
    uint32_t n = block->hdr.bh1.num_pkts;
    auto* hdr = reinterpret_cast<tpacket3_hdr*>(reinterpret_cast<uint8_t*>(block) + block->hdr.bh1.offset_to_first_pkt);
    {
      std::lock_guard<std::mutex> lock(r->mu);
      for (uint32_t i = 0; i < n; i++) {
        const auto* ll = reinterpret_cast<const sockaddr_ll*>(reinterpret_cast<const uint8_t*>(hdr) + TPACKET_ALIGN(sizeof(tpacket3_hdr)));
        uint32_t cap = hdr->tp_snaplen;
        if (cap > kChunkBytes - kRecordHeader) cap = kChunkBytes - kRecordHeader;
        size_t need = kRecordHeader + ((cap + 3u) & ~3u);
        if (g_queued.load(std::memory_order_relaxed) + need > g_queue_limit.load(std::memory_order_relaxed)) {
          r->queue_drops.fetch_add(1, std::memory_order_relaxed);
        } else {
          if (r->ready.empty() || r->ready.back().used + need > kChunkBytes) {
            r->ready.emplace_back();
            if (!r->spare.empty()) {
              r->ready.back().bytes = std::move(r->spare.back());
              r->spare.pop_back();
            } else {
              r->ready.back().bytes.reset(new uint8_t[kChunkBytes]);
            }
          }
          Chunk& c = r->ready.back();
          uint8_t* rec = c.bytes.get() + c.used;
          uint32_t fields[5] = {cap, hdr->tp_len, static_cast<uint32_t>(ll->sll_ifindex), hdr->tp_sec, hdr->tp_nsec};
          memcpy(rec, fields, sizeof fields);
          uint16_t kinds[2] = {ll->sll_pkttype, ntohs(ll->sll_protocol)};
          memcpy(rec + 20, kinds, sizeof kinds);
          memcpy(rec + kRecordHeader, reinterpret_cast<const uint8_t*>(hdr) + hdr->tp_net, cap);
          c.used += need;
          g_queued.fetch_add(need, std::memory_order_relaxed);
          queued = true;
        }
        hdr = reinterpret_cast<tpacket3_hdr*>(reinterpret_cast<uint8_t*>(hdr) + hdr->tp_next_offset);
      }
    }
    __atomic_store_n(&block->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    r->next_block = (r->next_block + 1) % r->block_count;
  }
  return queued;
}

void ReaderLoop(Ring* r) {
  pollfd fds[2] = {{r->fd, POLLIN, 0}, {r->wake_fd, POLLIN, 0}};
  while (!r->stop.load()) {
    if (DrainBlocks(r)) uv_async_send(&r->wake);
    poll(fds, 2, 100);
  }
}

/** JavaScript thread: hands every queued chunk to onRecords, oldest first. */
void OnWake(uv_async_t* handle) {
  auto* r = static_cast<Ring*>(handle->data);
  for (;;) {
    if (r->closed) return;
    Chunk c;
    {
      std::lock_guard<std::mutex> lock(r->mu);
      if (r->ready.empty()) return;
      // The chunk being filled is taken too: the thread starts a new one.
      c = std::move(r->ready.front());
      r->ready.pop_front();
    }
    g_queued.fetch_sub(c.used);
    memcpy(r->out, c.bytes.get(), c.used);
    {
      std::lock_guard<std::mutex> lock(r->mu);
      if (r->spare.size() < kSpareChunks) r->spare.push_back(std::move(c.bytes));
    }
    Deliver(r, c.used);
  }
}

void Finalize(napi_env env, void* data, void* /*hint*/) {
  auto* r = static_cast<Ring*>(data);
  if (r->callback) napi_delete_reference(env, r->callback);
  if (r->out_ref) napi_delete_reference(env, r->out_ref);
  if (r->async) napi_async_destroy(env, r->async);
  r->callback = r->out_ref = nullptr;
  r->async = nullptr;
  CloseRing(r);
  r->finalized = true;
  if (r->uv_done) delete r;
}

bool GetU32(napi_env env, napi_value v, uint32_t* out) {
  return napi_get_value_uint32(env, v, out) == napi_ok;
}

napi_value Open(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 7) return ThrowType(env, "open(ifname, filter, blockBytes, blockCount, retireMs, out, onRecords)");
  char ifname[IF_NAMESIZE + 1] = {0};
  size_t ifname_len = 0;
  if (napi_get_value_string_utf8(env, argv[0], ifname, sizeof ifname, &ifname_len) != napi_ok) return ThrowType(env, "ifname must be a string");
  void* filter_data = nullptr;
  size_t filter_len = 0;
  if (napi_get_buffer_info(env, argv[1], &filter_data, &filter_len) != napi_ok || filter_len == 0 || filter_len % sizeof(sock_filter) != 0 ||
      filter_len / sizeof(sock_filter) > BPF_MAXINSNS) {
    return ThrowType(env, "filter must be a Buffer of struct sock_filter (8 bytes each, at most 4096)");
  }
  uint32_t block_bytes = 0, block_count = 0, retire_ms = 0;
  if (!GetU32(env, argv[2], &block_bytes) || !GetU32(env, argv[3], &block_count) || !GetU32(env, argv[4], &retire_ms)) {
    return ThrowType(env, "blockBytes, blockCount and retireMs must be unsigned integers");
  }
  long page = sysconf(_SC_PAGESIZE);
  if (block_bytes < 65536 || block_bytes % page != 0 || (block_bytes & (block_bytes - 1)) != 0 || block_count < 2 || retire_ms == 0) {
    return ThrowType(env, "blockBytes must be a power of two >= 65536, blockCount >= 2, retireMs >= 1");
  }
  void* out = nullptr;
  size_t out_len = 0;
  if (napi_get_buffer_info(env, argv[5], &out, &out_len) != napi_ok || out_len < kChunkBytes) {
    return ThrowType(env, "out must be a Buffer of at least 1 MiB");
  }
  napi_valuetype cb_type;
  napi_typeof(env, argv[6], &cb_type);
  if (cb_type != napi_function) return ThrowType(env, "onRecords must be a function");

  unsigned ifindex = 0;
  if (ifname_len > 0) {
    ifindex = if_nametoindex(ifname);
    if (ifindex == 0) return ThrowErrno(env, errno ? errno : ENODEV, ifname);
  }
  // Protocol 0: the socket receives nothing until bind(), after the filter and the ring exist.
  int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return ThrowErrno(env, errno, "socket(AF_PACKET)");
  auto fail = [&](const char* what) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, err, what);
  };
  int version = TPACKET_V3;
  if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &version, sizeof version) != 0) return fail("setsockopt(PACKET_VERSION, TPACKET_V3)");
  sock_fprog prog{static_cast<unsigned short>(filter_len / sizeof(sock_filter)), static_cast<sock_filter*>(filter_data)};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0) return fail("setsockopt(SO_ATTACH_FILTER)");
  tpacket_req3 req{};
  req.tp_block_size = block_bytes;
  req.tp_block_nr = block_count;
  req.tp_frame_size = 2048;  // not used by TPACKET_V3 (frames are packed), but validated
  req.tp_frame_nr = (block_bytes / req.tp_frame_size) * block_count;
  req.tp_retire_blk_tov = retire_ms;
  if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) != 0) return fail("setsockopt(PACKET_RX_RING)");
  size_t map_len = static_cast<size_t>(block_bytes) * block_count;
  void* map = mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED | MAP_POPULATE, fd, 0);
  if (map == MAP_FAILED) map = mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) return fail("mmap(packet ring)");
  sockaddr_ll addr{};
  addr.sll_family = AF_PACKET;
  addr.sll_protocol = htons(ETH_P_ALL);
  addr.sll_ifindex = static_cast<int>(ifindex);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    munmap(map, map_len);
    close(fd);
    return ThrowErrno(env, err, "bind(AF_PACKET)");
  }

  int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    int err = errno;
    munmap(map, map_len);
    close(fd);
    return ThrowErrno(env, err, "eventfd");
  }

  auto* r = new Ring();
  r->fd = fd;
  r->wake_fd = wake_fd;
  r->map = static_cast<uint8_t*>(map);
  r->map_len = map_len;
  r->block_bytes = block_bytes;
  r->block_count = block_count;
  r->env = env;
  r->out = static_cast<uint8_t*>(out);
  r->out_len = out_len;
  napi_create_reference(env, argv[6], 1, &r->callback);
  napi_create_reference(env, argv[5], 1, &r->out_ref);
  napi_value resource_name;
  napi_create_string_utf8(env, "egret.packetRing", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, nullptr, resource_name, &r->async);
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  uv_async_init(loop, &r->wake, OnWake);
  r->wake.data = r;
  r->reader = std::thread(ReaderLoop, r);
  napi_value handle;
  napi_create_external(env, r, Finalize, nullptr, &handle);
  return handle;
}

Ring* GetRing(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  void* data = nullptr;
  if (argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok || data == nullptr) {
    ThrowType(env, "expected a handle returned by open()");
    return nullptr;
  }
  return static_cast<Ring*>(data);
}

napi_value Stats(napi_env env, napi_callback_info info) {
  Ring* r = GetRing(env, info);
  if (!r) return nullptr;
  ReadKernelStats(r);
  napi_value result, v;
  napi_create_object(env, &result);
  napi_create_double(env, static_cast<double>(r->packets), &v);
  napi_set_named_property(env, result, "packets", v);
  napi_create_double(env, static_cast<double>(r->drops), &v);
  napi_set_named_property(env, result, "drops", v);
  napi_create_double(env, static_cast<double>(r->freezes), &v);
  napi_set_named_property(env, result, "freezes", v);
  napi_create_double(env, static_cast<double>(r->queue_drops.load()), &v);
  napi_set_named_property(env, result, "queueDrops", v);
  return result;
}

napi_value Close(napi_env env, napi_callback_info info) {
  Ring* r = GetRing(env, info);
  if (!r) return nullptr;
  CloseRing(r);
  if (r->callback) napi_delete_reference(env, r->callback);
  r->callback = nullptr;
  if (r->out_ref) napi_delete_reference(env, r->out_ref);
  r->out_ref = nullptr;
  return nullptr;
}

napi_value SetQueueLimit(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  double bytes = 0;
  if (argc < 1 || napi_get_value_double(env, argv[0], &bytes) != napi_ok || !(bytes >= kChunkBytes)) {
    return ThrowType(env, "setQueueLimit(bytes): at least 1 MiB");
  }
  g_queue_limit.store(static_cast<size_t>(bytes));
  return nullptr;
}

napi_value IfName(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t index = 0;
  if (argc < 1 || !GetU32(env, argv[0], &index)) return ThrowType(env, "ifName(index)");
  char name[IF_NAMESIZE + 1] = {0};
  napi_value result;
  if (if_indextoname(index, name) == nullptr) {
    napi_get_undefined(env, &result);
    return result;
  }
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &result);
  return result;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", nullptr, Open, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"stats", nullptr, Stats, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"close", nullptr, Close, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setQueueLimit", nullptr, SetQueueLimit, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"ifName", nullptr, IfName, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
