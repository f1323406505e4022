// The live connection (/v1/ws): one WebSocket, one followed thread, honest state.
//
// The feed remembers the last seq it handed on. After any close it reconnects and
// subscribes with after_seq = that seq, so the server replays exactly what was
// missed; an event at or below it is dropped as a duplicate, one beyond the next
// expected seq makes it ask again from the last seq (protocol spec 2.2, 2.3).

export const CONNECTING = "connecting";
export const CONNECTED = "connected";
export const RECONNECTING = "reconnecting";
export const LAGGING = "lagging";
export const OFFLINE = "offline";

const HEARTBEAT_MS = 5_000;
const PING_AFTER_QUIET_MS = 20_000;
const PONG_TIMEOUT_MS = 10_000;
const ACK_EVERY_MS = 1_000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15_000;
const LAGGING_RETRY_MS = 100;

const CLOSE_MEANING = {
  1000: "closed normally",
  1001: "the server is shutting down",
  1005: "closed without a code",
  1006: "the connection was lost",
  1009: "a message was too large",
  1011: "the server hit an error",
  1012: "the server is restarting",
  4008: "this page fell behind (lagging)",
  4401: "the token was refused",
  4403: "this token may not open a live connection",
  4429: "too many open connections for this user",
};

/** What a close code means, in words. */
export function closeMeaning(code) {
  return CLOSE_MEANING[code] ?? "the connection closed";
}

export class LiveFeed {
  #ws = null;
  #generation = 0;
  #retryTimer = null;
  #heartbeat = null;
  #ackTimer = null;
  #attempt = 0;
  #stopped = true;
  #lagging = false;
  #lastFrameAt = 0;
  #pingSentAt = null;

  /**
   * url: the /v1/ws address; handlers: onState(state, detail), onEvent(event),
   * onSubscribed(frame), onProblem(text), onAuthFailed(text), log(text).
   */
  constructor(url, token, handlers) {
    this.url = url;
    this.token = token;
    this.handlers = handlers;
    this.state = OFFLINE;
    this.detail = "";
    this.retryAt = null;
    this.thread = null;
    this.connections = 0;
    this.onOnline = () => {
      if (this.state === RECONNECTING) this.retryNow();
    };
  }

  start() {
    this.#stopped = false;
    window.addEventListener("online", this.onOnline);
    this.#setState(CONNECTING, "opening the live connection");
    this.#open();
  }

  stop(why = "signed out") {
    this.#stopped = true;
    window.removeEventListener("online", this.onOnline);
    this.#clearTimers();
    this.#drop();
    this.#setState(OFFLINE, why);
  }

  /** Follow `threadId` from `afterSeq` on (events with a larger seq), replacing any other. */
  follow(threadId, afterSeq = 0) {
    const previous = this.thread;
    this.thread = {
      id: threadId,
      startSeq: afterSeq,
      lastSeq: afterSeq,
      head: afterSeq,
      received: 0,
      duplicates: 0,
      gaps: 0,
      subscribed: false,
    };
    if (this.#isOpen()) {
      if (previous && previous.id !== threadId) {
        this.#send({ op: "unsubscribe", thread_id: previous.id });
      }
      this.#subscribe();
    }
  }

  /** Stop waiting for the next attempt and reconnect now. */
  retryNow() {
    if (this.#stopped || this.#isOpen()) return;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#open();
  }

  // -- the socket ----------------------------------------------------------------

  #open() {
    this.#drop();
    this.retryAt = null;
    if (this.state === RECONNECTING || this.state === LAGGING) {
      this.#setState(this.state, "connecting again");
    }
    const generation = ++this.#generation;
    const url = new URL(this.url);
    url.searchParams.set("access_token", this.token);
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (error) {
      this.#lost(`cannot open a WebSocket: ${error.message}`);
      return;
    }
    this.#ws = ws;
    const current = () => generation === this.#generation;
    ws.addEventListener("open", () => current() && this.#onOpen());
    ws.addEventListener("message", (m) => current() && this.#onFrame(m.data));
    ws.addEventListener("close", (e) => current() && this.#onClose(e.code, e.reason));
  }

  #isOpen() {
    return this.#ws !== null && this.#ws.readyState === WebSocket.OPEN;
  }

  #send(frame) {
    if (this.#isOpen()) this.#ws.send(JSON.stringify(frame));
  }

  /** Forget the current socket: its late callbacks are ignored from now on. */
  #drop() {
    const ws = this.#ws;
    this.#ws = null;
    this.#generation += 1;
    clearInterval(this.#heartbeat);
    this.#heartbeat = null;
    clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
    if (this.thread) this.thread.subscribed = false;
    if (ws && ws.readyState <= WebSocket.OPEN) {
      try {
        ws.close(1000, "client done");
      } catch {
        // Already closing.
      }
    }
  }

  #clearTimers() {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
  }

  #onOpen() {
    this.connections += 1;
    this.#lastFrameAt = Date.now();
    this.#pingSentAt = null;
    this.#heartbeat = setInterval(() => this.#beat(), HEARTBEAT_MS);
    this.#log("connected");
    if (this.thread) this.#subscribe();
    else {
      this.#attempt = 0;
      this.#settle();
    }
  }

  #onClose(code, reason) {
    const meaning = closeMeaning(code);
    const said = reason ? ` ("${reason}")` : "";
    this.#log(`closed by the server or network: ${code}, ${meaning}${said}`);
    this.#ws = null;
    this.#drop();
    if (this.#stopped) return;
    if (code === 4401 || code === 4403) {
      this.stop(meaning);
      this.handlers.onAuthFailed?.(`The live connection was refused: ${meaning}.`);
      return;
    }
    if (code === 4008) {
      this.#lagging = true;
      const after = this.thread ? ` after seq ${this.thread.lastSeq}` : "";
      this.#setState(LAGGING, `fell behind; resuming${after}`);
      this.#retryIn(LAGGING_RETRY_MS);
      return;
    }
    this.#lost(meaning);
  }

  #lost(why) {
    const delay = this.#backoff();
    this.#setState(RECONNECTING, why);
    this.#retryIn(delay);
  }

  #retryIn(delay) {
    this.#clearTimers();
    this.retryAt = Date.now() + delay;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#open();
    }, delay);
    this.handlers.onState?.(this.state, this.detail);
  }

  #backoff() {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.#attempt);
    this.#attempt += 1;
    // Jitter, so a restarted server is not hit by every page at the same instant.
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  #beat() {
    if (!this.#isOpen()) return;
    const now = Date.now();
    if (this.#pingSentAt !== null && now - this.#pingSentAt > PONG_TIMEOUT_MS) {
      this.#log(`no answer to a ping for ${PONG_TIMEOUT_MS / 1000} s: reconnecting`);
      this.#drop();
      this.#lost("the server stopped answering");
    } else if (this.#pingSentAt === null && now - this.#lastFrameAt > PING_AFTER_QUIET_MS) {
      this.#pingSentAt = now;
      this.#send({ op: "ping" });
    }
  }

  // -- frames --------------------------------------------------------------------

  #subscribe() {
    const t = this.thread;
    t.subscribed = false;
    this.#send({ op: "subscribe", thread_id: t.id, after_seq: t.lastSeq });
  }

  #onFrame(text) {
    this.#lastFrameAt = Date.now();
    this.#pingSentAt = null;
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      this.#log("the server sent a frame that is not JSON; ignored");
      return;
    }
    if (frame === null || typeof frame !== "object") return;
    switch (frame.type) {
      case "event":
        this.#onEvent(frame.event);
        break;
      case "subscribed":
        this.#onSubscribed(frame);
        break;
      case "error":
        this.#onError(frame);
        break;
      default:
        break; // pong, unsubscribed: the timestamp above is all they are for.
    }
  }

  #onSubscribed(frame) {
    const t = this.thread;
    if (!t || frame.thread_id !== t.id) return;
    t.subscribed = true;
    if (Number.isInteger(frame.head_seq)) t.head = Math.max(t.head, frame.head_seq);
    this.#attempt = 0;
    this.#log(`subscribed after seq ${t.lastSeq}; the thread's head is ${frame.head_seq}`);
    this.handlers.onSubscribed?.(frame);
    this.#settle();
  }

  #onEvent(event) {
    const t = this.thread;
    if (!t || !event || typeof event !== "object" || event.thread_id !== t.id) return;
    const seq = event.seq;
    if (!Number.isInteger(seq)) return;
    if (seq <= t.lastSeq) {
      t.duplicates += 1;
      this.#log(`dropped a duplicate of seq ${seq}`);
      return;
    }
    if (seq > t.lastSeq + 1) {
      t.gaps += 1;
      if (t.subscribed) {
        this.#log(`expected seq ${t.lastSeq + 1}, got ${seq}: asking again`);
        this.#subscribe();
      }
      return;
    }
    t.lastSeq = seq;
    t.received += 1;
    if (seq > t.head) t.head = seq;
    this.handlers.onEvent?.(event);
    this.#scheduleAck();
    this.#settle();
  }

  #onError(frame) {
    const t = this.thread;
    const ours = t && frame.thread_id === t.id;
    const message = typeof frame.message === "string" ? frame.message : "";
    this.#log(`server error ${frame.code}${message ? `: ${message}` : ""}`);
    if (frame.code === "forbidden" && ours) {
      this.handlers.onProblem?.("This thread does not exist or is not yours.");
    } else if (frame.code === "gone" && ours && Number.isInteger(frame.first_seq)) {
      this.handlers.onProblem?.(
        `Events before seq ${frame.first_seq} were removed by retention; showing the rest.`
      );
      t.lastSeq = Math.max(t.lastSeq, frame.first_seq - 1);
      this.#subscribe();
    } else if (frame.code === "unavailable" && ours) {
      this.#setState(RECONNECTING, "the server cannot read this thread right now");
      this.#drop();
      this.#retryIn(this.#backoff());
    } else {
      this.handlers.onProblem?.(`The server said: ${frame.code}${message ? ` (${message})` : ""}`);
    }
  }

  #scheduleAck() {
    if (this.#ackTimer !== null) return;
    this.#ackTimer = setTimeout(() => {
      this.#ackTimer = null;
      const t = this.thread;
      if (t && t.subscribed) this.#send({ op: "ack", thread_id: t.id, seq: t.lastSeq });
    }, ACK_EVERY_MS);
  }

  // -- state ---------------------------------------------------------------------

  /** Connected, or still lagging until the events missed while lagging are in. */
  #settle() {
    const t = this.thread;
    if (t && !t.subscribed) return;
    const behind = t ? t.head - t.lastSeq : 0;
    if (this.#lagging && behind > 0) {
      this.#setState(LAGGING, `catching up: seq ${t.lastSeq} of ${t.head}`);
      return;
    }
    if (this.#lagging) this.#log("caught up after lagging");
    this.#lagging = false;
    this.#setState(CONNECTED, behind > 0 ? `loading: seq ${t.lastSeq} of ${t.head}` : "live");
  }

  #setState(state, detail) {
    if (state === this.state && detail === this.detail) return;
    this.state = state;
    this.detail = detail;
    this.handlers.onState?.(state, detail);
  }

  #log(text) {
    this.handlers.log?.(text);
  }
}
