/**
 * Test projects: "workers" runs inside workerd through @cloudflare/vitest-plugin (the relay's own
 * runtime, with wrangler.toml's compatibility settings); "node" runs Node-side suites: the test
 * services themselves and end-to-end runs of the real Worker through wrangler.
 *
 * Files run one at a time: they share the SMTP sinks and the gateway's command counter, and the
 * suites pin exact envelopes and command counts.
 *
 * The test CA is made here, at the top level, before any project starts: workerd trusts extra CAs
 * only through NODE_EXTRA_CA_CERTS. Every project (and every process vitest spawns) inherits it.
 *
 * globalSetup sits at the root on purpose: vitest runs a root globalSetup once per run and every
 * project reads what it provides, so all projects share one set of SMTP sinks and one gateway
 * (a globalSetup inside a project would start another set for each project).
 */
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";
import { makeTestCertificates } from "./dev/test-ca.ts";

const certs = makeTestCertificates(resolve(dirname(fileURLToPath(import.meta.url)), ".certs"));
process.env.NODE_EXTRA_CA_CERTS = certs.caPath;
// Miniflare (inside @cloudflare/vitest-plugin) copies NODE_EXTRA_CA_CERTS into workerd's trust
// list once, when the module is first evaluated. A static `import { cloudflareTest }` runs before
// the line above (imports are hoisted, and a bundled config puts package imports first), and then
// TLS from workerd to the sinks fails with "invalid peer certificate: UnknownIssuer". So the
// workers project must load the plugin from here on, with a dynamic import:
//   const { cloudflareTest } = await import("@cloudflare/vitest-plugin");
const { cloudflareTest } = await import("@cloudflare/vitest-plugin");

export default defineConfig({
  test: {
    globalSetup: ["test/global-setup.ts"],
    fileParallelism: false,
    // In CI, also a machine-readable summary; .ci/run prints its totals as the closing line.
    reporters: process.env.CI ? ["default", "json"] : ["default"],
    outputFile: { json: ".vitest-report.json" },
    projects: [
      {
        plugins: [cloudflareTest({ wrangler: { configPath: "./wrangler.toml" } })],
        test: {
          name: "workers",
          include: ["test/workers/**/*.test.ts"],
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
      {
        test: {
          name: "node",
          environment: "node",
          include: ["test/node/**/*.test.ts"],
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
    ],
  },
});
