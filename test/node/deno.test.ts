/**
 * Runs the Deno suite (test/deno) from vitest, so `npm test` and CI cover the relay on Deno with
 * nothing else installed: Deno comes from the `deno` npm package, and the services it talks to
 * (the Upstash gateway in front of real Redis, the SMTP sinks) are the ones test/global-setup.ts
 * started, handed over in DENO_TEST_SERVICES.
 *
 * First `deno check` over the Deno entry, the sockets shim, the core and the Deno tests, then
 * `deno test`. Outside CI a missing Deno binary skips both and says why; in CI it fails.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { redisSkipReason, services } from "../support/services.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/**
 * The binary the `deno` package installed, or why there is none. The package's own install helper
 * answers (it returns the binary it placed, or finds the platform package's one when its install
 * script did not run).
 */
function findDeno(): { path: string } | { missing: string } {
  try {
    const install = createRequire(import.meta.url)("deno/install_api.cjs") as {
      runInstall(): string;
    };
    const path = install.runInstall();
    if (existsSync(path)) return { path };
    return { missing: `the deno package names ${path}, which does not exist` };
  } catch (err) {
    return { missing: `no Deno binary from the deno npm package (${String(err)}): npm install` };
  }
}

function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; output: string }> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk;
    });
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk;
    });
    child.on("error", fail);
    child.on("close", (code) => done({ code, output }));
  });
}

const deno = findDeno();
if ("missing" in deno && process.env.CI === "true") {
  throw new Error(`CI runs the Deno suite, but ${deno.missing}`);
}
const redis = redisSkipReason();
const skip = "missing" in deno ? deno.missing : redis;

describe.skipIf(Boolean(skip))(`the relay on Deno${skip ? ` (skipped: ${skip})` : ""}`, () => {
  const denoPath = "path" in deno ? deno.path : "";
  const env = () => ({ ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" });

  it("passes deno check (entry, sockets shim, core, dev launcher, Deno tests)", async () => {
    const { code, output } = await run(
      denoPath,
      ["check", "src", "dev/start-deno.ts", "test/deno"],
      env(),
    );
    expect(code, output).toBe(0);
  }, 180_000);

  it("passes the Deno suite against real Redis and real SMTP servers", async () => {
    const s = services();
    const { code, output } = await run(
      denoPath,
      [
        "test",
        // net: the relays it starts, the sinks' and the gateway's control APIs; env: the services;
        // read: deno.json (the serve task's flags) and Deno.execPath(); run: the relay processes
        // and python3 (smtplib, a real SMTP client, against deno task start's listener).
        "--allow-net",
        "--allow-env",
        "--allow-read",
        `--allow-run=${denoPath},python3`,
        // The worker-mailer tests speak TLS to the sinks from this process.
        "--cert",
        s.caPath,
        "test/deno",
      ],
      { ...env(), DENO_TEST_SERVICES: JSON.stringify(s) },
    );
    expect(code, output).toBe(0);
    // Say what ran: vitest shows one test, the Deno report has the detail.
    const summary = /(ok|FAILED) \| \d+ passed.*$/m.exec(output)?.[0];
    if (summary) console.log(`deno test: ${summary}`);
  }, 300_000);
});
