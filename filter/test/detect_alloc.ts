// Allocation harness for the protocol detector: built with the runtime's rtrace hooks so a test
// can count every heap allocation made while detecting. Pure logic, no proxy-wasm ABI. Driven by
// control/test/unit/detect/alloc.test.ts.
import { Detector } from "../assembly/detect/detector";

// Turns on the runtime's rtrace hooks (rtrace.onalloc, onfree, …) for this module only.
// @ts-ignore: decorator
@global const ASC_RTRACE = true;

const clientInput = memory.data(16384);
const serverInput = memory.data(4096);
const detector = new Detector();

export function client_area(): usize { return clientInput; }
export function server_area(): usize { return serverInput; }

/**
 * Runs `times` connections through the one detector: reset, server bytes first when serverFirst,
 * both directions in `chunk`-byte segments, then expire and read every claim. Returns the last result.
 */
export function run_many(times: i32, clientLen: i32, serverLen: i32, serverFirst: bool, chunk: i32, midstream: bool): i32 {
  let r = -1;
  for (let t = 0; t < times; t++) {
    detector.reset();
    detector.setMidstream(midstream);
    for (let pass = 0; pass < 2; pass++) {
      const server = (pass == 0) == serverFirst;
      const base = server ? serverInput : clientInput;
      const len = server ? serverLen : clientLen;
      for (let off = 0; off < len; off += chunk) {
        const n = min(chunk, len - off);
        if (server) detector.feedServer(base + <usize>off, n);
        else detector.feedClient(base + <usize>off, n);
      }
    }
    r = detector.expire();
    r += detector.sniLen() + detector.httpHostLen() + detector.connectTargetLen() + detector.alpnCount() * 0;
    for (let i = 0; i < detector.alpnCount(); i++) r += detector.alpnLen(i) * 0;
  }
  return detector.result();
}
