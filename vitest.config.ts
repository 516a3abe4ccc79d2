/**
 * Test projects. Only "node" exists so far; a "workers" project (tests inside workerd through
 * @cloudflare/vitest-plugin) goes next to it in `test.projects`.
 *
 * The test CA is made here, at the top level, before any project starts: workerd trusts extra CAs
 * only through NODE_EXTRA_CA_CERTS, read when it is spawned, so the variable must be set before
 * the plugin starts it. Every project inherits it.
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

export default defineConfig({
  test: {
    globalSetup: ["test/global-setup.ts"],
    projects: [
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
