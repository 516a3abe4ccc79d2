/**
 * Debian's Chromium for the browser suites (playwright-core drives it): why a suite is skipped
 * without it or without Redis (in CI, where .ci/run installs it, a missing browser fails), and
 * the one way the suites launch it.
 */
import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";
import { redisSkipReason } from "./services.ts";

export const CHROMIUM = "/usr/bin/chromium";

export function browserSkipReason(): string | false {
  const redis = redisSkipReason();
  if (redis) return redis;
  if (!existsSync(CHROMIUM)) {
    if (process.env.CI === "true")
      throw new Error(`${CHROMIUM} is missing; .ci/run installs Debian's chromium for CI`);
    return `${CHROMIUM} is missing (apt-get install chromium)`;
  }
  return false;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
