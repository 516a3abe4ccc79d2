/**
 * The official `resend` SDK inside workerd, unchanged but for its base URL: its `fetch` calls to
 * https://relay.test go to the Workers entry in-process (test/support/worker.ts), so tests drive
 * the exact paths, query strings, headers and bodies the SDK sends.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { Resend } from "resend";
import { afterEach, vi } from "vitest";
import worker from "../../src/runtime/workers.ts";
import { ADMIN, type TestEnv } from "./worker.ts";

export const RELAY_ORIGIN = "https://relay.test";
export const CLIENT_IP = "203.0.113.9";

/** Routes global fetch to the relay for `env` (until the test ends) and returns a client. */
export function sdk(env: TestEnv, token: string = ADMIN): Resend {
  const real = globalThis.fetch;
  vi.stubGlobal("fetch", async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init);
    // As workerd would set it for a client in the documentation range (keys with allowed_ips).
    if (!request.headers.has("cf-connecting-ip"))
      request.headers.set("cf-connecting-ip", CLIENT_IP);
    if (new URL(request.url).origin !== RELAY_ORIGIN) return real(input, init);
    const ctx = createExecutionContext();
    const res = await worker.fetch(request, env, ctx);
    await waitOnExecutionContext(ctx);
    return res;
  });
  return new Resend(token, { baseUrl: RELAY_ORIGIN });
}

afterEach(() => {
  vi.unstubAllGlobals();
});
