/** The SMTP listener's settings: off by default, and errors that name the variable, never a key. */
import { describe, expect, it } from "vitest";
import { loadSubmissionConfig } from "../../src/config/submission.ts";
import { ConfigError } from "../../src/errors.ts";

function configError(env: Record<string, string>): ConfigError {
  try {
    loadSubmissionConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

const CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
const KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----";

describe("loadSubmissionConfig", () => {
  it("opens nothing unless a port is set; SIZE follows MAX_MESSAGE_BYTES", () => {
    const c = loadSubmissionConfig({});
    expect(c.port).toBeUndefined();
    expect(c.tlsPort).toBeUndefined();
    expect(c.tls).toBeUndefined();
    expect(c.host).toBe("127.0.0.1");
    expect(c.trustedNetworks).toEqual([]);
    expect(c.maxMessageBytes).toBe(7 * 1024 * 1024);
    expect(loadSubmissionConfig({ MAX_MESSAGE_BYTES: "2048" }).maxMessageBytes).toBe(2048);
    expect(loadSubmissionConfig({ SMTP_SUBMISSION_PORT: "587" }).port).toBe(587);
  });

  it("reads trusted networks as CIDR=API_KEY pairs", () => {
    const c = loadSubmissionConfig({
      SMTP_TRUSTED_NETWORKS: "10.0.0.0/8=re_one, 192.0.2.7=re_two\n2001:db8::/32=re_three",
    });
    expect(c.trustedNetworks).toEqual([
      { range: "10.0.0.0/8", apiKey: "re_one" },
      { range: "192.0.2.7", apiKey: "re_two" },
      { range: "2001:db8::/32", apiKey: "re_three" },
    ]);
  });

  it("names the variable and the entry, and never repeats a key", () => {
    const bad = configError({
      SMTP_TRUSTED_NETWORKS: "10.0.0.0/8=re_secret1,not-a-range=re_secret2",
    });
    expect(bad.variable).toBe("SMTP_TRUSTED_NETWORKS");
    expect(bad.message).toMatch(/entry 2: "not-a-range" is not an IP address or CIDR range/);
    expect(bad.message).not.toContain("re_secret");
    expect(configError({ SMTP_TRUSTED_NETWORKS: "0.0.0.0/0=re_secret" }).message).toMatch(
      /trusts every address \(an open relay\)/,
    );
    expect(configError({ SMTP_TRUSTED_NETWORKS: "10.0.0.0/8" }).message).toMatch(
      /names no API key/,
    );
    expect(configError({ SMTP_SUBMISSION_PORT: "70000" }).variable).toBe("SMTP_SUBMISSION_PORT");
    expect(configError({ SMTP_SUBMISSION_RELAY_URL: "relay.example" }).variable).toBe(
      "SMTP_SUBMISSION_RELAY_URL",
    );
  });

  it("takes the certificate and key together, as PEM; implicit TLS needs them", () => {
    expect(
      loadSubmissionConfig({ SMTP_SUBMISSION_TLS_CERT: CERT, SMTP_SUBMISSION_TLS_KEY: KEY }).tls,
    ).toEqual({ cert: CERT, key: KEY });
    expect(configError({ SMTP_SUBMISSION_TLS_CERT: CERT }).variable).toBe(
      "SMTP_SUBMISSION_TLS_KEY",
    );
    expect(
      configError({ SMTP_SUBMISSION_TLS_CERT: "/etc/ssl/cert.pem", SMTP_SUBMISSION_TLS_KEY: KEY })
        .message,
    ).toMatch(/PEM text itself/);
    expect(configError({ SMTP_SUBMISSION_TLS_PORT: "465" }).message).toMatch(
      /SMTP_SUBMISSION_TLS_PORT: needs SMTP_SUBMISSION_TLS_CERT/,
    );
  });
});
