/**
 * base64url without padding (RFC 4648 §5): how tokens, secrets and signatures travel in URLs,
 * cookies and form fields. Written out because Workers and Deno have no Buffer to lean on and
 * Uint8Array.toBase64 is not yet everywhere the relay runs.
 */
export function base64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

/** The bytes of a base64url text of 1 to `maxLength` characters; null for anything else. */
export function fromBase64url(text: string, maxLength = 100): Uint8Array<ArrayBuffer> | null {
  if (text.length > maxLength || !/^[A-Za-z0-9_-]+$/.test(text)) return null;
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
