// The bearer token: taken from the link `make run` prints (/#token=...), kept for this
// tab only (sessionStorage), and read for display. The server checks it; the page
// only decodes the claims to say who is signed in and until when.

const STORAGE_KEY = "threadwire.token";

/** Read a `token` from the address fragment, then remove it from the address bar. */
export function takeTokenFromAddress(loc = window.location, hist = window.history) {
  const params = new URLSearchParams(loc.hash.replace(/^#/, ""));
  if (!params.has("token")) return null;
  const token = params.get("token").trim();
  params.delete("token");
  const rest = params.toString();
  // replaceState: the token must not stay in the address bar or the history.
  hist.replaceState(hist.state, "", loc.pathname + loc.search + (rest ? `#${rest}` : ""));
  return token || null;
}

/** A value of the address fragment (`#thread=...`), or null. */
export function fragmentParam(name, loc = window.location) {
  return new URLSearchParams(loc.hash.replace(/^#/, "")).get(name);
}

/** Set (or, with null, remove) a value of the address fragment without a history entry. */
export function setFragmentParam(name, value, loc = window.location, hist = window.history) {
  const params = new URLSearchParams(loc.hash.replace(/^#/, ""));
  if (value === null) params.delete(name);
  else params.set(name, value);
  const rest = params.toString();
  hist.replaceState(hist.state, "", loc.pathname + loc.search + (rest ? `#${rest}` : ""));
}

export function savedToken() {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

export function saveToken(token) {
  try {
    sessionStorage.setItem(STORAGE_KEY, token);
  } catch {
    // Storage disabled: the token lives as long as the page.
  }
}

export function forgetToken() {
  try {
    sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // Nothing stored.
  }
}

export class TokenFormatError extends Error {}

/** The token's claims ({sub, exp, ...}) without checking the signature. */
export function claimsOf(token) {
  const parts = token.split(".");
  if (parts.length !== 3 || parts.some((part) => !/^[A-Za-z0-9_-]*$/.test(part))) {
    throw new TokenFormatError(
      "That is not a token: a token is three base64url parts joined by dots."
    );
  }
  let claims;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    claims = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new TokenFormatError("That token's middle part is not readable JSON.");
  }
  if (claims === null || typeof claims !== "object" || typeof claims.sub !== "string") {
    throw new TokenFormatError("That token names no user (no `sub` claim).");
  }
  return claims;
}

/** Seconds until the token expires (negative once expired), or null without `exp`. */
export function secondsLeft(claims, now = Date.now()) {
  return typeof claims.exp === "number" ? claims.exp - now / 1000 : null;
}
