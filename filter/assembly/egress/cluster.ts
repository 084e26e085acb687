// Envoy's chosen cluster (property `xds.cluster_name`, set by tcp_proxy when it picks the upstream:
// available from the first data callback on, never in on_new_connection). Istio names a service's
// outbound cluster `outbound|PORT|SUBSET|HOST` (pilot/pkg/model/service.go BuildSubsetKey); for a
// ServiceEntry VIP, HOST is the ServiceEntry host Envoy really sends the connection to.
// Pure byte parsing; no ABI access here.

const OUTBOUND = "outbound|";

/** Set by outboundHost(): where HOST starts in the value, and its length. */
export let clusterHostOffset: u32 = 0;
export let clusterHostLength: u32 = 0;

/**
 * Whether the cluster name is `outbound|PORT|SUBSET|HOST` with a single, non-wildcard HOST; when it
 * is, clusterHostOffset/Length locate HOST. PassthroughCluster, BlackHoleCluster, inbound and
 * wildcard hosts answer false (nothing to cross-check). Allocation-free.
 */
export function outboundHost(ptr: usize, len: u32): bool {
  const prefix = <u32>OUTBOUND.length;
  if (len <= prefix) return false;
  for (let i: u32 = 0; i < prefix; i++) if (<u32>load<u8>(ptr + i) != <u32>OUTBOUND.charCodeAt(i)) return false;
  // Two more '|' separate PORT, SUBSET and HOST.
  let bars = 0;
  let at = prefix;
  while (at < len && bars < 2) {
    if (load<u8>(ptr + at) == 0x7c) bars++;
    at++;
  }
  if (bars < 2 || at >= len) return false;
  for (let i = at; i < len; i++) {
    const c = load<u8>(ptr + i);
    if (c == 0x7c || c == 0x2a) return false; // a fourth '|' or a wildcard '*'
  }
  clusterHostOffset = at;
  clusterHostLength = len - at;
  return true;
}
