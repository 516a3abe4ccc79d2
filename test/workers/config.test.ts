/** Configuration: defaults, and errors that name the variable that is wrong. */
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { ConfigError } from "../../src/errors.ts";
import { describeSmtpTarget, parseSmtpUrl } from "../../src/smtp/url.ts";

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  it("has working defaults with nothing set", () => {
    const c = loadConfig({});
    expect(c.upstash).toBeUndefined();
    expect(c.smtp).toBeUndefined();
    expect(c.smtpMaxConnections).toBe(3);
    expect(c.retry).toEqual({ firstMs: 60_000, maxMs: 4 * 3_600_000 });
    expect(c.maxQueueAgeMs).toBe(96 * 3_600_000);
    expect(c.immediateDelivery).toBe(true);
    expect(c.smtpTimeoutMs).toBe(30_000);
    // RFC 5321 4.5.3.2.6: ten minutes for the reply to the final dot.
    expect(c.smtpDataTimeoutMs).toBe(600_000);
  });

  it("reads the request log's switch, cap and age, on by default", () => {
    expect(loadConfig({}).requestLog).toEqual({
      enabled: true,
      maxEntries: 1000,
      retentionMs: 7 * 24 * 3_600_000,
    });
    const off = loadConfig({ REQUEST_LOG: "off", REQUEST_LOG_MAX: "50", REQUEST_LOG_DAYS: "2" });
    expect(off.requestLog).toEqual({ enabled: false, maxEntries: 50, retentionMs: 2 * 86_400_000 });
    expect(configError({ REQUEST_LOG: "sometimes" }).message).toMatch(/REQUEST_LOG/);
    expect(configError({ REQUEST_LOG_MAX: "5" }).message).toMatch(/REQUEST_LOG_MAX/);
    expect(configError({ REQUEST_LOG_DAYS: "91" }).message).toMatch(/REQUEST_LOG_DAYS/);
  });

  it("keeps fan-out off by default, and caps a fanned-out deployment at its invocations' connections", () => {
    expect(loadConfig({}).fanout).toEqual({ invocations: 1, hostConnectionCap: undefined });
    expect(loadConfig({ DELIVERY_FANOUT: "4", SMTP_MAX_CONNECTIONS: "5" }).fanout).toEqual({
      invocations: 4,
      hostConnectionCap: 20,
    });
    // A cap of its own, with or without fan-out (overlapping cron runs share it too).
    expect(loadConfig({ DELIVERY_FANOUT: "4", SMTP_HOST_MAX_CONNECTIONS: "12" }).fanout).toEqual({
      invocations: 4,
      hostConnectionCap: 12,
    });
    expect(loadConfig({ SMTP_HOST_MAX_CONNECTIONS: "2" }).fanout.hostConnectionCap).toBe(2);
  });

  it("reads SMTP_DATA_TIMEOUT_SECONDS, at least SMTP_TIMEOUT_SECONDS and at most 840", () => {
    expect(loadConfig({ SMTP_DATA_TIMEOUT_SECONDS: "120" }).smtpDataTimeoutMs).toBe(120_000);
    expect(
      loadConfig({
        SMTP_TIMEOUT_SECONDS: "45",
        SMTP_DATA_TIMEOUT_SECONDS: "45",
        DELIVERY_LEASE_SECONDS: "300",
      }).smtpDataTimeoutMs,
    ).toBe(45_000);
    const below = configError({ SMTP_TIMEOUT_SECONDS: "30", SMTP_DATA_TIMEOUT_SECONDS: "20" });
    expect(below.variable).toBe("SMTP_DATA_TIMEOUT_SECONDS");
    expect(below.message).toMatch(
      /^SMTP_DATA_TIMEOUT_SECONDS: must be at least SMTP_TIMEOUT_SECONDS \(30 here\)/,
    );
    expect(configError({ SMTP_DATA_TIMEOUT_SECONDS: "900" }).variable).toBe(
      "SMTP_DATA_TIMEOUT_SECONDS",
    );
    expect(configError({ SMTP_DATA_TIMEOUT_SECONDS: "10m" }).message).toMatch(
      /^SMTP_DATA_TIMEOUT_SECONDS: must be a whole number/,
    );
  });

  it("reads the DKIM sealing secret (hex or base64), else ADMIN_TOKEN, and the DoH resolver", () => {
    const hex = loadConfig({ DKIM_ENCRYPTION_KEY: "ab".repeat(32) }).dkim;
    expect(hex.secret).toEqual({
      from: "DKIM_ENCRYPTION_KEY",
      bytes: new Uint8Array(32).fill(0xab),
    });
    const b64 = loadConfig({ DKIM_ENCRYPTION_KEY: btoa("\x01".repeat(32)) }).dkim.secret;
    expect(b64).toEqual({ from: "DKIM_ENCRYPTION_KEY", bytes: new Uint8Array(32).fill(1) });
    const token = "t".repeat(24);
    expect(loadConfig({ ADMIN_TOKEN: token }).dkim.secret).toEqual({ from: "ADMIN_TOKEN", token });
    expect(loadConfig({}).dkim).toEqual({
      secret: null,
      dohUrl: "https://cloudflare-dns.com/dns-query",
      dohTimeoutMs: 5000,
    });
    expect(loadConfig({ BOUNCE_DOMAIN: "Bounces.Example.com" }).bounceDomain).toBe(
      "bounces.example.com",
    );
  });

  const bad: [string, Record<string, string>][] = [
    ["UPSTASH_REDIS_REST_TOKEN", { UPSTASH_REDIS_REST_URL: "https://x.upstash.io" }],
    ["UPSTASH_REDIS_REST_URL", { UPSTASH_REDIS_REST_TOKEN: "t" }],
    [
      "UPSTASH_REDIS_REST_URL",
      { UPSTASH_REDIS_REST_URL: "redis://x", UPSTASH_REDIS_REST_TOKEN: "t" },
    ],
    ["SMTP_MAX_CONNECTIONS", { SMTP_MAX_CONNECTIONS: "7" }],
    ["SMTP_TIMEOUT_SECONDS", { SMTP_TIMEOUT_SECONDS: "ten" }],
    ["IMMEDIATE_DELIVERY", { IMMEDIATE_DELIVERY: "maybe" }],
    ["SMTP_EHLO_NAME", { SMTP_EHLO_NAME: "bad name\r\nMAIL FROM" }],
    ["SMTP_CLIENT", { SMTP_CLIENT: "sendmail" }],
    ["ADMIN_TOKEN", { ADMIN_TOKEN: "too-short" }],
    [
      "MAX_MESSAGE_BYTES",
      {
        // One byte over what a claim can answer within Upstash's 10 MB.
        MAX_MESSAGE_BYTES: String(7 * 1024 * 1024 + 1),
        UPSTASH_REDIS_REST_URL: "https://x.upstash.io",
        UPSTASH_REDIS_REST_TOKEN: "t",
      },
    ],
    [
      "MAX_MESSAGE_BYTES",
      {
        MAX_MESSAGE_BYTES: "20000000",
        UPSTASH_REDIS_REST_URL: "https://x.upstash.io",
        UPSTASH_REDIS_REST_TOKEN: "t",
      },
    ],
    ["SMTP_URL", { SMTP_URL: "http://smtp.example.com" }],
    ["BOUNCE_DOMAIN", { BOUNCE_DOMAIN: "localhost" }],
    ["BOUNCE_DOMAIN", { BOUNCE_DOMAIN: "bounces.example.com\r\nX: y" }],
    ["DKIM_ENCRYPTION_KEY", { DKIM_ENCRYPTION_KEY: "short" }],
    ["DKIM_ENCRYPTION_KEY", { DKIM_ENCRYPTION_KEY: "z".repeat(64) }],
    ["DOH_URL", { DOH_URL: "ftp://dns.example" }],
    ["DOH_URL", { DOH_URL: "https://dns.example/q?name=x" }],
    ["DOH_TIMEOUT_SECONDS", { DOH_TIMEOUT_SECONDS: "60" }],
    ["DELIVERY_FANOUT", { DELIVERY_FANOUT: "0" }],
    ["DELIVERY_FANOUT", { DELIVERY_FANOUT: "17" }],
    ["SMTP_HOST_MAX_CONNECTIONS", { SMTP_HOST_MAX_CONNECTIONS: "0" }],
    ["SMTP_HOST_MAX_CONNECTIONS", { SMTP_HOST_MAX_CONNECTIONS: "many" }],
  ];
  for (const [variable, env] of bad) {
    it(`names ${variable} when it is wrong (${JSON.stringify(env)})`, () => {
      const err = configError(env);
      expect(err.variable).toBe(variable);
      expect(err.message.startsWith(`${variable}: `)).toBe(true);
    });
  }
});

describe("SMTP_URL", () => {
  it("reads smtps:// as implicit TLS on 465 with decoded credentials", () => {
    expect(parseSmtpUrl("smtps://user%40corp:p%3Ass@smtp.example.com")).toEqual({
      host: "smtp.example.com",
      port: 465,
      security: "implicit",
      auth: { user: "user@corp", pass: "p:ss" },
    });
  });

  it("reads smtp:// as required STARTTLS on 587", () => {
    expect(parseSmtpUrl("smtp://u:p@smtp.example.com")).toMatchObject({
      port: 587,
      security: "starttls",
    });
  });

  it("allows clear text only when asked by name, and then without credentials", () => {
    expect(parseSmtpUrl("smtp+insecure://127.0.0.1:2525")).toMatchObject({
      security: "none",
      auth: undefined,
    });
    expect(() => parseSmtpUrl("smtp+insecure://u:p@127.0.0.1:2525")).toThrow(
      /SMTP_URL: .*credentials/,
    );
  });

  it("never shows the password when describing the target", () => {
    const described = describeSmtpTarget(parseSmtpUrl("smtps://me:s3cret@smtp.example.com:465"));
    expect(described).toBe("smtps://me:***@smtp.example.com:465");
  });
});

describe("SMTP_URL with several smart hosts", () => {
  it("reads a list separated by commas or spaces, in failover order", () => {
    const c = loadConfig({
      SMTP_URL:
        " smtps://a:pa@a.example.com:465, smtp://b:pb@b.example.com:587\n smtp+insecure://127.0.0.1:2525 ",
    });
    expect(c.smtpHosts.map((h) => `${h.security} ${h.host}:${h.port}`)).toEqual([
      "implicit a.example.com:465",
      "starttls b.example.com:587",
      "none 127.0.0.1:2525",
    ]);
    // The first host is still the one `smtp` names (DKIM checks and the banner read it).
    expect(c.smtp).toEqual(c.smtpHosts[0]);
    expect(loadConfig({}).smtpHosts).toEqual([]);
  });

  it("names SMTP_URL and the position of a bad entry, never its password", () => {
    const err = configError({
      SMTP_URL: "smtps://a:secret-one@a.example.com,http://b:secret-two@b.example.com",
    });
    expect(err.variable).toBe("SMTP_URL");
    expect(err.message).toMatch(/^SMTP_URL: smart host 2 of 2 scheme "http:" is not supported/);
    expect(err.message).not.toMatch(/secret/);
    const clear = configError({ SMTP_URL: "smtps://a.example.com smtp+insecure://u:hunter2@b" });
    expect(clear.message).toMatch(/smart host 2 of 2 .*credentials/);
    expect(clear.message).not.toContain("hunter2");
  });

  it("refuses more than five smart hosts", () => {
    const six = Array.from({ length: 6 }, (_, i) => `smtps://h${i}.example.com`).join(",");
    expect(configError({ SMTP_URL: six }).message).toMatch(/SMTP_URL: lists 6 smart hosts/);
  });
});

describe("SMTP_ROUTES", () => {
  const base = { SMTP_URL: "smtps://default.example.com" };

  it("reads domain and key routes, failover lists and their own connection limits", () => {
    const c = loadConfig({
      ...base,
      SMTP_ROUTES:
        " Acme.Test=smtps://u:p@a.example.com:465?connections=2 smtp://b.example.com ; key:k_123=smtp+insecure://127.0.0.1:2525 ;",
    });
    expect(c.smtpRoutes).toEqual([
      {
        match: { domain: "acme.test" },
        hosts: [
          expect.objectContaining({
            host: "a.example.com",
            port: 465,
            auth: { user: "u", pass: "p" },
          }),
          expect.objectContaining({ host: "b.example.com", port: 587 }),
        ],
        maxConnections: 2,
      },
      {
        match: { keyId: "k_123" },
        hosts: [expect.objectContaining({ host: "127.0.0.1", port: 2525 })],
        maxConnections: undefined,
      },
    ]);
    expect(loadConfig(base).smtpRoutes).toEqual([]);
  });

  it("names SMTP_ROUTES and the route, never a password", () => {
    for (const [routes, message] of [
      ["acme.test", /route 1: must look like/],
      [
        "acme.test=smtps://a.example.com;not a domain=smtps://b.example.com",
        /route 2: "not a domain"/,
      ],
      ["acme.test=http://u:secret@a.example.com", /route 1: scheme "http:"/],
      ["acme.test=smtps://a.example.com?connections=9", /route 1: connections must be 1 to 6/],
      [
        "acme.test=smtps://a.example.com;ACME.test=smtps://b.example.com",
        /route 2: acme.test is routed twice/,
      ],
      ["key:bad!id=smtps://a.example.com", /route 1: key:bad!id is not an API key id/],
    ] as const) {
      const err = configError({ ...base, SMTP_ROUTES: routes });
      expect(err.variable, routes).toBe("SMTP_ROUTES");
      expect(err.message, routes).toMatch(message);
      expect(err.message).not.toContain("secret");
    }
    expect(configError({ SMTP_ROUTES: "acme.test=smtps://a.example.com" }).message).toMatch(
      /SMTP_ROUTES: is set but SMTP_URL is not/,
    );
  });
});
