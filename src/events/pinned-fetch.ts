/**
 * The POST to a webhook endpoint on runtimes that can reach private networks (Deno): the endpoint's
 * name is resolved by the relay, every answer must be a public address (hosts.ts), and the
 * connection goes to exactly those addresses. A name that points at 10.0.0.5 or 127.0.0.1, or that
 * is switched to one after the endpoint was saved (DNS rebinding), is refused; resolving once and
 * connecting to the checked answer leaves no second lookup to rebind.
 *
 * It uses node:http(s) because its `lookup` option decides where the socket connects while TLS
 * still verifies the URL's host name; Deno's fetch has no such hook (Deno.createHttpClient's "tcp"
 * proxy transport does not speak TLS to the target). Names are resolved with the system resolver
 * (getaddrinfo, /etc/hosts included), as a plain fetch would.
 */
import { Buffer } from "node:buffer";
import { lookup as systemLookup } from "node:dns/promises";
import http from "node:http";
import https from "node:https";
import type { LookupFunction } from "node:net";
import { addressProblem, isLoopbackHost, normaliseHost } from "./hosts.ts";

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

export type Resolver = (host: string) => Promise<ResolvedAddress[]>;

const systemResolver: Resolver = async (host) =>
  (await systemLookup(host, { all: true, verbatim: true })).map((a) => ({
    address: a.address,
    family: a.family === 6 ? 6 : 4,
  }));

/** An endpoint refused because of where its name leads (recorded as the attempt's error). */
export class EndpointAddressError extends Error {}

/** How much of an answer is read (the dispatcher keeps 500 characters of it). */
const MAX_ANSWER_BYTES = 64 * 1024;

function checkAddress(host: string, address: string, allowLoopback: boolean): void {
  if (allowLoopback && isLoopbackHost(address)) return;
  const problem = addressProblem(address);
  if (problem !== null) {
    const where = host === address ? address : `${host} resolves to ${address}, which`;
    throw new EndpointAddressError(`${where} is not a public address; not sent`);
  }
}

/** The addresses `host` resolves to, all of them public (or loopback when allowed). */
export async function resolvePublic(
  host: string,
  allowLoopback: boolean,
  resolve: Resolver = systemResolver,
): Promise<ResolvedAddress[]> {
  let answers: ResolvedAddress[];
  try {
    answers = await resolve(host);
  } catch (err) {
    throw new EndpointAddressError(
      `${host} could not be resolved: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  if (answers.length === 0) throw new EndpointAddressError(`${host} has no address`);
  // Every answer, not just the first: the connection may use any of them.
  for (const a of answers) checkAddress(host, a.address, allowLoopback);
  return answers;
}

export interface PinnedInit {
  method: string;
  headers: Record<string, string>;
  body: string;
  signal: AbortSignal;
}

const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

/** POSTs `init.body` to `url`, connecting only to checked addresses. Redirects are not followed. */
export async function pinnedFetch(
  url: string,
  init: PinnedInit,
  allowLoopback: boolean,
  resolve: Resolver = systemResolver,
): Promise<Response> {
  const target = new URL(url);
  const host = normaliseHost(target.hostname);
  const literal = target.hostname.startsWith("[") || /^[\d.]+$/.test(host);
  if (literal) checkAddress(host, host, allowLoopback);
  const lookup: LookupFunction = (name, options, callback) => {
    resolvePublic(name, allowLoopback, resolve).then(
      (answers) => {
        const wanted = options.family === 4 || options.family === 6 ? options.family : 0;
        const usable = answers.filter((a) => wanted === 0 || a.family === wanted);
        const first = usable[0];
        if (!first) {
          callback(new EndpointAddressError(`${name} has no IPv${wanted} address`), "", 4);
        } else if (options.all) {
          (callback as unknown as (e: null, all: ResolvedAddress[]) => void)(null, usable);
        } else {
          callback(null, first.address, first.family);
        }
      },
      (err: Error) => callback(err, "", 4),
    );
  };
  const client = target.protocol === "https:" ? https : http;
  return new Promise<Response>((done, fail) => {
    const req = client.request(
      url,
      {
        method: init.method,
        headers: { ...init.headers, "content-length": String(Buffer.byteLength(init.body)) },
        lookup,
        signal: init.signal,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const finish = () => {
          const status = res.statusCode ?? 0;
          try {
            const text = Buffer.concat(chunks).toString("utf8");
            done(new Response(NULL_BODY_STATUSES.has(status) ? null : text, { status }));
          } catch (err) {
            fail(err);
          }
        };
        res.on("data", (chunk: Buffer) => {
          if (size >= MAX_ANSWER_BYTES) return;
          chunks.push(chunk);
          size += chunk.length;
          // The rest of a long answer is not needed: the status is what counts.
          if (size >= MAX_ANSWER_BYTES) {
            finish();
            res.destroy();
          }
        });
        res.on("end", () => {
          if (size < MAX_ANSWER_BYTES) finish();
        });
        res.on("error", fail);
      },
    );
    req.on("error", fail);
    req.end(init.body);
  });
}
