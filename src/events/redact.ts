/**
 * Hides Bcc recipients in text a payload carries (an SMTP server's reply): servers echo the
 * address in any case ("<Audit@Acme.test>") and often the bare mailbox name as well ("unknown
 * user audit"), so both go, case-insensitively. To and Cc addresses are not secret and stay.
 */

export const BCC_PLACEHOLDER = "[bcc recipient]";

// What may continue a local part or a domain: a match inside a longer word is not the address.
// A dot counts only when a word character follows it (a full stop ends a sentence).
const BEFORE = "(?<![A-Za-z0-9!#$%&'*+/=?^_`{|}~-]|[A-Za-z0-9]\\.)";
const AFTER = "(?![A-Za-z0-9!#$%&'*+/=?^_`{|}~-]|\\.[A-Za-z0-9])";

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

function localPart(address: string): string {
  const at = address.lastIndexOf("@");
  return at > 0 ? address.slice(0, at) : "";
}

/**
 * `text` with every `hidden` address replaced, and then each one's local part where it stands
 * alone. Text inside a `shown` address is left as it is (a To of "ann@audit.test" must not become
 * "ann@[bcc recipient].test", which would tell what it hid). A local part that is also a shown
 * address's local part is left too: it is not secret, and hiding it in that address's own reply
 * would tell which Bcc recipient shares it.
 */
export function redactBcc(
  text: string,
  hidden: readonly string[],
  shown: readonly string[],
): string {
  if (hidden.length === 0 || text === "") return text;
  const full = new RegExp(
    [...hidden]
      .sort((a, b) => b.length - a.length)
      .map(escapeRegExp)
      .join("|"),
    "gi",
  );
  let out = text.replace(full, BCC_PLACEHOLDER);
  const shownLocal = new Set(shown.map((a) => localPart(a).toLowerCase()));
  const locals = [...new Set(hidden.map((a) => localPart(a).toLowerCase()))]
    .filter((l) => l !== "" && !shownLocal.has(l))
    .sort((a, b) => b.length - a.length);
  if (locals.length === 0) return out;
  const bare = new RegExp(`${BEFORE}(?:${locals.map(escapeRegExp).join("|")})${AFTER}`, "gi");
  // Shown addresses and placeholders already written stay whole: split on them (the separators
  // land at the odd indexes) and redact only between them.
  const keep = new RegExp(
    `(${[BCC_PLACEHOLDER, ...shown]
      .sort((a, b) => b.length - a.length)
      .map(escapeRegExp)
      .join("|")})`,
    "i",
  );
  out = out
    .split(keep)
    .map((part, i) => (i % 2 === 1 ? part : part.replace(bare, BCC_PLACEHOLDER)))
    .join("");
  return out;
}
