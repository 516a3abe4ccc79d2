/**
 * The layering rule the README's "Architecture" section states: every module under src/ belongs to
 * one layer, and imports only from its own layer or the ones below. The table is here, next to the
 * check, so a new folder has to say where it sits before the suite passes.
 *
 * Also the size rule: no module in src/ over 400 lines unless it is listed below with the reason.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, posix, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** Lowest first. A path matches the longest prefix listed; every file must match one. */
const LAYERS: { name: string; paths: string[] }[] = [
  {
    name: "base",
    paths: [
      "src/errors.ts",
      "src/log.ts",
      "src/json.ts",
      "src/read-within.ts",
      "src/base64url.ts",
      "src/cursor-page.ts",
    ],
  },
  {
    name: "domain",
    paths: [
      "src/config.ts",
      "src/config/",
      "src/mail/",
      "src/templates/",
      "src/smtp/",
      "src/auth/",
      "src/store/",
      "src/dkim/",
    ],
  },
  {
    name: "use cases",
    paths: [
      "src/delivery/",
      "src/events/",
      "src/intake/",
      "src/relay.ts",
      "src/records.ts",
      "src/template-library.ts",
      "src/idempotency.ts",
      "src/listing/",
      "src/request-log.ts",
      "src/attachments.ts",
      "src/relay-secrets.ts",
      "src/domains.ts",
      "src/unique-name.ts",
      "src/suppressions.ts",
      "src/bounces/",
    ],
  },
  // The relay's front doors: the HTTP API, and the SMTP listener that hands mail to it.
  { name: "http", paths: ["src/http/", "src/submission/"] },
  { name: "runtime", paths: ["src/runtime/"] },
];

/** Modules allowed past 400 lines, and why. */
const LONG_MODULES: Record<string, string> = {};
const MAX_LINES = 400;

function layerOf(path: string): number | undefined {
  let best: { rank: number; length: number } | undefined;
  LAYERS.forEach((layer, rank) => {
    for (const prefix of layer.paths) {
      const hit = prefix.endsWith("/") ? path.startsWith(prefix) : path === prefix;
      if (hit && (!best || prefix.length > best.length)) best = { rank, length: prefix.length };
    }
  });
  return best?.rank;
}

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = posix.join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return /\.(ts|mts|mjs|js)$/.test(entry.name) ? [path] : [];
  });
}

// Static imports and re-exports (`import … from "x"`, `export … from "x"`, `import "x"`) and
// dynamic `import("x")`; type-only imports count too: a type from a higher layer is still a
// dependency on it.
const IMPORT =
  /(?:^|[\s;])(?:import|export)\s(?:[^"'`;]*?\sfrom\s)?["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

interface Edge {
  from: string;
  to: string;
}

function edgesOf(file: string): Edge[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  const edges: Edge[] = [];
  for (const match of text.matchAll(IMPORT)) {
    const spec = match[1] ?? match[2];
    if (!spec?.startsWith(".")) continue; // packages and node: builtins
    const target = relative(ROOT, resolve(ROOT, dirname(file), spec))
      .split("\\")
      .join("/");
    edges.push({ from: file, to: target });
  }
  return edges;
}

const files = sources("src");
const edges = files.flatMap(edgesOf);

describe("layers", () => {
  it("places every module under src/ in a layer", () => {
    expect(files.filter((f) => layerOf(f) === undefined)).toEqual([]);
  });

  it("finds the imports it checks (the parser sees every layer reach the one below)", () => {
    // Guards the check itself: if the pattern stopped matching, the rule below would pass empty.
    const crossings = new Set(
      edges.map((e) => `${layerOf(e.from)}>${layerOf(e.to)}`).filter((k) => !k.includes("undef")),
    );
    for (let rank = 1; rank < LAYERS.length; rank++) {
      expect(crossings, `${LAYERS[rank]?.name} imports ${LAYERS[rank - 1]?.name}`).toContain(
        `${rank}>${rank - 1}`,
      );
    }
  });

  it("has no module import from a layer above its own", () => {
    const upward = edges
      .filter((e) => (layerOf(e.to) ?? -1) > (layerOf(e.from) ?? Number.POSITIVE_INFINITY))
      .map(
        (e) =>
          `${e.from} (${LAYERS[layerOf(e.from) ?? 0]?.name}) imports ${e.to} (${LAYERS[layerOf(e.to) ?? 0]?.name})`,
      );
    expect(upward).toEqual([]);
  });

  it(`keeps modules under ${MAX_LINES} lines unless listed with a reason`, () => {
    const long = files
      .map((f) => ({ f, lines: readFileSync(join(ROOT, f), "utf8").split("\n").length }))
      .filter(({ f, lines }) => lines > MAX_LINES && !(f in LONG_MODULES))
      .map(({ f, lines }) => `${f}: ${lines} lines`);
    expect(long).toEqual([]);
  });
});
