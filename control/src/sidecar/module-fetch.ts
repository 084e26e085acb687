// istio-agent's Wasm module download, reproduced for the mesh in a box (facts from istio/istio
// pkg/wasm/httpfetcher.go, cache.go, options.go and pkg/backoff, identical in tags 1.20.0–1.29.0
// and HEAD 2026-08):
// - HTTP GET, at most `WASM_HTTP_REQUEST_MAX_RETRIES` = 5 attempts, each with a 15 s timeout
//   (`WASM_HTTP_REQUEST_TIMEOUT`);
// - retried only after a transport error or a 5xx other than 501, 505 and 511 (`retryable`);
//   any other status (404 included) fails at once; `Retry-After` is not read;
// - between attempts an exponential backoff from 500 ms (cenkalti/backoff defaults the Istio
//   wrapper keeps: multiplier 1.5, randomization ±50 %), also after the last failed attempt;
// - the body's sha256 must equal the configured one, or the module is refused (not retried).
// What the agent then does with a failure depends on the Istio version (ecds.ts).
import { createHash } from "node:crypto";

export interface FetchOptions {
  attempts?: number;
  timeoutMs?: number;
  initialBackoffMs?: number;
  /** Waits between attempts (injected so tests need not sleep). */
  sleep?: (ms: number) => Promise<void>;
  /** [0, 1): the backoff's randomization. */
  random?: () => number;
  /** Called after each failed attempt (logging, tests). */
  onAttempt?: (attempt: number, error: string) => void;
}

export class ModuleFetchError extends Error {
  constructor(message: string, readonly attempts: number, readonly status?: number) { super(message); }
}

/** istio-agent's `retryable`: 5xx except 501 Not Implemented, 505 HTTP Version, 511 Network Auth. */
export function retryableStatus(code: number): boolean {
  return code >= 500 && code !== 501 && code !== 505 && code !== 511;
}

/** cenkalti/backoff ExponentialBackOff with Istio's initial interval: the n-th wait (n from 0). */
export function backoffMs(n: number, initialMs: number, random: () => number): number {
  const interval = Math.min(initialMs * 1.5 ** n, 60_000);
  const delta = 0.5 * interval;
  return interval - delta + random() * (2 * delta + 1);
}

const sleepReal = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Downloads the module like istio-agent and checks its sha256 (lowercase hex). */
export async function fetchModule(url: string, sha256: string, o: FetchOptions = {}): Promise<Buffer> {
  const attempts = o.attempts ?? 5;
  const sleep = o.sleep ?? sleepReal;
  const random = o.random ?? Math.random;
  let last = "";
  let lastStatus: number | undefined;
  let n = 0;
  while (n < attempts) {
    n++;
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(o.timeoutMs ?? 15_000), redirect: "follow" });
    } catch (e) {
      last = (e as Error & { cause?: Error }).cause?.message ?? (e as Error).message;
      lastStatus = undefined;
      o.onAttempt?.(n, last);
      await sleep(backoffMs(n - 1, o.initialBackoffMs ?? 500, random));
      continue;
    }
    if (res.status === 200) {
      const body = Buffer.from(await res.arrayBuffer());
      const got = createHash("sha256").update(body).digest("hex");
      if (got !== sha256.toLowerCase()) {
        throw new ModuleFetchError(`module downloaded from ${url} has checksum ${got}, which does not match: ${sha256}`, n, 200);
      }
      return body;
    }
    await res.arrayBuffer().catch(() => undefined);
    last = `wasm module download request failed: status code ${res.status}`;
    lastStatus = res.status;
    o.onAttempt?.(n, last);
    if (!retryableStatus(res.status)) break;
    await sleep(backoffMs(n - 1, o.initialBackoffMs ?? 500, random));
  }
  throw new ModuleFetchError(`wasm module download failed after ${n} attempts, last error: ${last}`, n, lastStatus);
}
