// Filters are bound to their pod: Watch, Lookup and Report are served only when the connection's
// peer address is one of the claimed pod's IPs. Kubernetes does not NAT pod-to-pod traffic, and a
// sidecar connects to control from its pod's network namespace, so the source address *is* the
// pod's identity (the CNI's anti-spoofing keeps a pod from sending from another pod's address).
//
// Escape hatch, off by default: clusters that SNAT pod traffic on its way to control (some
// overlay/egress setups) can list the translated source ranges (`--filter-snat-peer CIDR`); calls
// from those ranges are served for the pod they name, unverified and counted as such.
import { CidrSet } from "../dns/cidr.js";
import { bytesToIp } from "../proto/ip.js";
import { ControlError } from "../control/errors.js";
import type { PodRecord, PodRegistry } from "../control/pods.js";
import { peerIp } from "./peer.js";

export interface BoundPod {
  namespace: string;
  name: string;
  /** The connection's source address. */
  peer: string;
  /** false when the peer is in a --filter-snat-peer range: the identity is the caller's claim. */
  verified: boolean;
}

export type FilterCall = "watch" | "lookup" | "report";

export class FilterBinder {
  private readonly snat: CidrSet;

  constructor(private readonly registry: PodRegistry, snatPeers: readonly string[] = []) {
    this.snat = new CidrSet(snatPeers, "--filter-snat-peer");
  }

  get snatEnabled(): boolean {
    return this.snat.size > 0;
  }

  /** Watch: the pod SUBSCRIBE names must own the peer address. */
  bindNamed(peer: string, namespace: string, name: string): BoundPod {
    const ip = this.peerAddress(peer);
    if (this.snat.has(ip)) return { namespace, name, peer: ip, verified: false };
    const owner = this.owner(ip);
    if (owner.namespace !== namespace || owner.name !== name) {
      throw new ControlError("EGRET_FILTER_POD_MISMATCH", `peer ${ip} is ${owner.namespace}/${owner.name}, the call names ${namespace}/${name}`);
    }
    return { namespace, name, peer: ip, verified: true };
  }

  /**
   * Lookup: the peer's pod; the source IP asked about must be one of its IPs (a pod may connect
   * from any of its addresses), and a pod name, when given, must be that pod.
   */
  bindSource(peer: string, sourceIp: Uint8Array, namespace: string, name: string): BoundPod {
    const ip = this.peerAddress(peer);
    const source = bytesToIp(sourceIp);
    if (this.snat.has(ip)) return { namespace, name, peer: ip, verified: false };
    const owner = this.owner(ip);
    if ((namespace || name) && (owner.namespace !== namespace || owner.name !== name)) {
      throw new ControlError("EGRET_FILTER_POD_MISMATCH", `peer ${ip} is ${owner.namespace}/${owner.name}, the call names ${namespace}/${name}`);
    }
    if (source !== undefined && !owner.ips.includes(source)) {
      throw new ControlError("EGRET_FILTER_POD_MISMATCH", `source_ip ${source} is not an address of ${owner.namespace}/${owner.name} (peer ${ip})`);
    }
    return { namespace: owner.namespace, name: owner.name, peer: ip, verified: true };
  }

  /** Report: the peer's pod (events are recorded under it); under SNAT, undefined (unbound). */
  bindPeer(peer: string): BoundPod | undefined {
    const ip = this.peerAddress(peer);
    if (this.snat.has(ip)) return undefined;
    const owner = this.owner(ip);
    return { namespace: owner.namespace, name: owner.name, peer: ip, verified: true };
  }

  /** Whether a verified binding still holds (the pod still owns the peer address). */
  stillHolds(b: BoundPod): boolean {
    if (!b.verified) return true;
    const pod = this.registry.get(b.namespace, b.name);
    return pod !== undefined && pod.ips.includes(b.peer);
  }

  private peerAddress(peer: string): string {
    const ip = peerIp(peer);
    if (ip === undefined) throw new ControlError("EGRET_FILTER_PEER_NOT_A_POD", `peer "${peer}" is not an IP address`);
    return ip;
  }

  private owner(ip: string): PodRecord {
    const pod = this.registry.byIp(ip);
    if (!pod) throw new ControlError("EGRET_FILTER_PEER_NOT_A_POD", `no pod has the address ${ip}`);
    return pod;
  }
}
