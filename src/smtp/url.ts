/**
 * `SMTP_URL` parsing. The scheme decides how the connection is protected, and credentials never
 * travel in clear: `smtp://` requires STARTTLS, `smtps://` is implicit TLS, and plain text must be
 * asked for by name (`smtp+insecure://`, meant for a development inbox on 127.0.0.1) and then
 * cannot carry credentials.
 */
import { ConfigError } from "../errors.ts";

export interface SmtpTarget {
  host: string;
  port: number;
  /** implicit: TLS from the first byte (465); starttls: upgrade required (587); none: plain text. */
  security: "implicit" | "starttls" | "none";
  auth: { user: string; pass: string } | undefined;
}

const DEFAULT_PORTS = { implicit: 465, starttls: 587, none: 25 } as const;

export function parseSmtpUrl(value: string): SmtpTarget {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(
      "SMTP_URL",
      "is not a URL; expected smtps://user:pass@smtp.example.com:465",
    );
  }
  const security =
    url.protocol === "smtps:"
      ? "implicit"
      : url.protocol === "smtp:"
        ? "starttls"
        : url.protocol === "smtp+insecure:"
          ? "none"
          : undefined;
  if (security === undefined) {
    throw new ConfigError(
      "SMTP_URL",
      `scheme ${JSON.stringify(url.protocol)} is not supported: use smtps:// (TLS), smtp:// (STARTTLS required) or smtp+insecure:// (no TLS, no credentials)`,
    );
  }
  if (!url.hostname) throw new ConfigError("SMTP_URL", "has no host name");
  const port = url.port ? Number(url.port) : DEFAULT_PORTS[security];
  const user = decodeURIComponent(url.username);
  const pass = decodeURIComponent(url.password);
  if ((user === "") !== (pass === "")) {
    throw new ConfigError("SMTP_URL", "has a user without a password (or the reverse)");
  }
  const auth = user ? { user, pass } : undefined;
  if (security === "none" && auth) {
    throw new ConfigError(
      "SMTP_URL",
      "smtp+insecure:// cannot carry credentials: they would travel in clear. Use smtps:// or smtp://",
    );
  }
  // URL keeps brackets around IPv6 literals; socket APIs want the bare address.
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  return { host, port, security, auth };
}

/** The target without its password, for logs and error messages. */
export function describeSmtpTarget(target: SmtpTarget): string {
  const scheme = { implicit: "smtps", starttls: "smtp", none: "smtp+insecure" }[target.security];
  const user = target.auth ? `${encodeURIComponent(target.auth.user)}:***@` : "";
  return `${scheme}://${user}${target.host}:${target.port}`;
}

/** Most smart hosts in one SMTP_URL: each dead one may cost a send one connect timeout. */
export const MAX_SMTP_HOSTS = 5;

/**
 * `SMTP_URL` as a list: smart hosts in failover order, separated by commas or white space (a comma
 * or space inside a user or password is percent-encoded, as any special character there). A bad
 * entry is named by its position, and the message never repeats the value (it may hold a password).
 */
export function parseSmtpUrls(value: string, variable = "SMTP_URL", where = ""): SmtpTarget[] {
  const entries = value.split(/[\s,]+/).filter((e) => e !== "");
  if (entries.length === 0) throw new ConfigError(variable, `${where}lists no smart host`);
  if (entries.length > MAX_SMTP_HOSTS) {
    throw new ConfigError(
      variable,
      `${where}lists ${entries.length} smart hosts; at most ${MAX_SMTP_HOSTS} are tried in turn`,
    );
  }
  return entries.map((entry, i) => {
    try {
      return parseSmtpUrl(entry);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      const reason = err.message.replace(/^SMTP_URL: /, "");
      const position = entries.length === 1 ? "" : `smart host ${i + 1} of ${entries.length} `;
      if (variable === "SMTP_URL" && where === "" && position === "") throw err;
      throw new ConfigError(variable, `${where}${position}${reason}`);
    }
  });
}
