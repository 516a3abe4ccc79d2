/**
 * Which hosts a webhook endpoint may name: public DNS names and global unicast addresses only.
 * Used when an endpoint is saved (names and literals) and, on Deno, for every address a name
 * resolves to before the relay connects (src/events/pinned-fetch.ts).
 */
import ipaddr from "ipaddr.js";

/**
 * Special-use names that never lead to a public host, by their last labels:
 * - IANA Special-Use Domain Names registry: localhost, invalid, test (RFC 6761), local
 *   (RFC 6762, mDNS), onion (RFC 7686), home.arpa (RFC 8375), alt (RFC 9476), and every name
 *   under arpa (in-addr.arpa, ip6.arpa, ipv4only.arpa RFC 8880, resolver.arpa RFC 9462, ...),
 *   which names address records and infrastructure, not web hosts;
 * - internal: reserved by ICANN for private use (board resolution 2024.07.29.06);
 * - the private names RFC 6762 appendix G lists as in use: intranet, private, corp, home, lan;
 * - localdomain: what many systems put in /etc/hosts for the machine itself.
 * "example" (RFC 6761) is included; example.com/.net/.org are real registered names and stay.
 */
export const SPECIAL_USE_SUFFIXES = [
  "localhost",
  "invalid",
  "test",
  "example",
  "local",
  "onion",
  "alt",
  "arpa",
  "internal",
  "intranet",
  "private",
  "corp",
  "home",
  "lan",
  "localdomain",
] as const;

/** Why a host is refused, or what kind of host it is when it may be used. */
export type HostVerdict = { refused: string } | { ok: "name" | "address" };

/** True for loopback: 127/8, ::1, localhost and *.localhost (WEBHOOK_ALLOW_LOOPBACK). */
export function isLoopbackHost(host: string): boolean {
  const h = normaliseHost(host);
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  const addr = parseAddress(h);
  return addr !== null && addr.range() === "loopback";
}

/**
 * Lower case, without the brackets of an IPv6 literal and without one trailing dot (the root:
 * "localhost." is localhost). The URL parser has already turned numeric spellings such as
 * 2130706433 or 0x7f.1 into dotted quads and names into A-labels (punycode).
 */
export function normaliseHost(host: string): string {
  let h = host.toLowerCase();
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  if (h.endsWith(".")) h = h.slice(0, -1);
  return h;
}

function parseAddress(host: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  if (ipaddr.IPv4.isValidFourPartDecimal(host)) return ipaddr.IPv4.parse(host);
  if (host.includes(":") && ipaddr.IPv6.isValid(host)) return ipaddr.IPv6.parse(host);
  return null;
}

/**
 * Why `address` is not a public unicast address, or null when it is. IPv4: anything ipaddr.js
 * 2.5 does not call "unicast", which covers the IANA IPv4 Special-Purpose Address Registry
 * (0/8, 10/8, 100.64/10, 127/8, 169.254/16, 172.16/12, 192.0.0/24, 192.0.2/24, 192.31.196/24,
 * 192.52.193/24, 192.88.99/24, 192.168/16, 192.175.48/24, 198.18/15, 198.51.100/24,
 * 203.0.113/24, 240/4, 255.255.255.255) and multicast. IPv6: only global unicast, 2000::/3
 * (RFC 4291 section 2.4; the rest of the space is reserved, loopback, link- or site-local,
 * unique local, multicast, or embeds IPv4: ::/96, ::ffff:0:0/96, 64:ff9b::/96, 64:ff9b:1::/48),
 * and within it not a range of the IANA IPv6 Special-Purpose Address Registry that ipaddr.js
 * names (2001::/23 with Teredo, benchmarking, ORCHID; 2001:db8::/32 and 3fff::/20
 * documentation; 2002::/16 6to4, which embeds an IPv4 address; 2620:4f:8000::/48 AS112).
 */
export function addressProblem(address: string): string | null {
  const addr = parseAddress(normaliseHost(address));
  if (addr === null) return `${address} is not an IP address`;
  const range = addr.range();
  if (addr.kind() === "ipv6") {
    const globalUnicast = (addr as ipaddr.IPv6).match(ipaddr.IPv6.parse("2000::"), 3);
    if (!globalUnicast) return `${address} is not a global unicast address (${range})`;
  }
  return range === "unicast" ? null : `${address} is a special-purpose address (${range})`;
}

/**
 * Checks a URL's host (as `new URL(...).hostname` gives it). Address literals must be public
 * unicast; names must have at least two labels, valid LDH labels, and no special-use suffix.
 */
export function checkHost(hostname: string): HostVerdict {
  const host = normaliseHost(hostname);
  if (host === "") return { refused: "has no host" };
  if (parseAddress(host) !== null) {
    const problem = addressProblem(host);
    return problem === null ? { ok: "address" } : { refused: problem };
  }
  const labels = host.split(".");
  const last = labels.at(-1) as string;
  if ((SPECIAL_USE_SUFFIXES as readonly string[]).includes(last)) {
    return { refused: `${host} is a special-use name (.${last})` };
  }
  if (labels.length < 2) return { refused: `${host} is a single-label name` };
  if (!labels.every((l) => /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/.test(l))) {
    return { refused: `${host} is not a valid host name` };
  }
  return { ok: "name" };
}
