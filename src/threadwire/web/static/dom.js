// DOM building and formatting. Event data is untrusted: it reaches the page only as
// text nodes and textContent, never through an HTML parser.

/**
 * Create an element. props: class, text, dataset, on<event> listeners, or attributes.
 * Children are nodes or strings (strings become text nodes).
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = String(value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** `el` emptied, then given `children`. */
export function fill(el, ...children) {
  el.replaceChildren();
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) el.append(child);
  }
  return el;
}

/** Show or hide an element (the `hidden` attribute, so CSS and AT agree). */
export function show(el, visible = true) {
  el.hidden = !visible;
}

/** A short message in an error slot; empty text hides the slot. */
export function setError(el, text, field = null) {
  el.textContent = text || "";
  el.hidden = !text;
  if (field) field.setAttribute("aria-invalid", text ? "true" : "false");
}

const timeFormat = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hour12: false,
});

/** "22:01:52.123" in local time, or the input itself when it is not a date. */
export function clock(ts) {
  const date = new Date(ts);
  if (Number.isNaN(date.getTime())) return String(ts ?? "");
  return `${timeFormat.format(date)}.${String(date.getMilliseconds()).padStart(3, "0")}`;
}

/** "2026-11-24 22:01" in local time. */
export function dayAndTime(ts) {
  const date = new Date(ts);
  if (Number.isNaN(date.getTime())) return String(ts ?? "");
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}`
  );
}

/** "52 ms", "1.3 s", "2 min 5 s". */
export function duration(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
}

const MAX_SHOWN = 20_000;

/** A value as indented JSON text, cut at a size a page can still show. */
export function prettyJson(value) {
  let text;
  try {
    text = JSON.stringify(value, null, 2) ?? "null";
  } catch {
    text = String(value);
  }
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}\n… (cut)` : text;
}

/** A value on one line: strings as they are, anything else as compact JSON. */
export function oneLine(value, limit = 160) {
  let text;
  if (typeof value === "string") text = value;
  else {
    try {
      text = JSON.stringify(value) ?? "";
    } catch {
      text = String(value);
    }
  }
  text = text.replace(/\s+/g, " ");
  return text.length > limit ? `${text.slice(0, limit - 1)}…` : text;
}

/** Copy text; falls back to selecting it when the Clipboard API is unavailable. */
export async function copyText(text, fallbackEl) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (fallbackEl) {
      const range = document.createRange();
      range.selectNodeContents(fallbackEl);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    }
    return false;
  }
}
