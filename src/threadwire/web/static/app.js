// The page: sign in, threads, starting runs, and the live timeline of one thread.

import { Api, ApiError, Unreachable } from "./api.js";
import {
  TokenFormatError,
  claimsOf,
  forgetToken,
  fragmentParam,
  saveToken,
  savedToken,
  secondsLeft,
  setFragmentParam,
  takeTokenFromAddress,
} from "./auth.js";
import { dayAndTime, fill, h, setError, show } from "./dom.js";
import { CONNECTED, CONNECTING, LAGGING, LiveFeed, OFFLINE, RECONNECTING } from "./live.js";
import { Timeline } from "./timeline.js";

/** At most this many past events are loaded when a thread is opened. */
const HISTORY_WINDOW = 2000;
const LOG_LIMIT = 200;

const STATE_TEXT = {
  [CONNECTING]: "Connecting…",
  [CONNECTED]: "Connected",
  [RECONNECTING]: "Reconnecting…",
  [LAGGING]: "Lagging: catching up",
  [OFFLINE]: "Not connected",
};

const $ = (id) => document.getElementById(id);

const ui = {
  conn: $("conn"),
  connState: $("conn-state"),
  connDetail: $("conn-detail"),
  retry: $("retry"),
  who: $("who"),
  user: $("user"),
  signOut: $("sign-out"),
  signIn: $("sign-in"),
  signInForm: $("sign-in-form"),
  token: $("token"),
  tokenError: $("token-error"),
  workspace: $("workspace"),
  newThread: $("new-thread"),
  newThreadId: $("new-thread-id"),
  newThreadError: $("new-thread-error"),
  threadList: $("thread-list"),
  threadsEmpty: $("threads-empty"),
  moreThreads: $("more-threads"),
  noThread: $("no-thread"),
  threadView: $("thread-view"),
  threadId: $("thread-id"),
  counter: $("counter"),
  countReceived: $("count-received"),
  countHead: $("count-head"),
  countLast: $("count-last"),
  runForm: $("run-form"),
  agent: $("agent"),
  runInput: $("run-input"),
  runError: $("run-error"),
  runStarted: $("run-started"),
  notice: $("notice"),
  timeline: $("timeline"),
  logBox: $("conn-log-box"),
  log: $("conn-log"),
  announcer: $("announcer"),
};

const session = {
  api: null,
  feed: null,
  threads: new Map(),
  nextBefore: null,
  current: null,
  subscribedHead: 0,
  retryTicker: null,
};

const timeline = new Timeline(ui.timeline, { onCancel: cancelRun, announce });

// -- sign in ----------------------------------------------------------------------

/** Fill the agent field's suggestions from the server (the page still works without). */
async function offerAgents(api) {
  let listed;
  try {
    listed = await api.listAgents();
  } catch {
    return;
  }
  const options = (listed?.agents ?? []).map((agent) => {
    const option = document.createElement("option");
    option.value = String(agent.name);
    if (agent.description) option.label = `${agent.name}: ${agent.description}`;
    return option;
  });
  if (options.length) document.getElementById("agents").replaceChildren(...options);
}

async function signIn(token, { fromLink = false } = {}) {
  let claims;
  try {
    claims = claimsOf(token);
  } catch (error) {
    if (!(error instanceof TokenFormatError)) throw error;
    return showSignIn(error.message);
  }
  const left = secondsLeft(claims);
  if (left !== null && left <= 0) {
    return showSignIn(
      `This token expired at ${dayAndTime(claims.exp * 1000)}. Get a new one with ` +
        "`threadwire token USER`."
    );
  }
  const api = new Api(token);
  let page;
  try {
    page = await api.listThreads();
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      return showSignIn(`The server refused this token: ${error.message}`);
    }
    return showSignIn(describe(error), { keepToken: token });
  }
  saveToken(token);
  session.api = api;
  ui.user.textContent = claims.sub;
  ui.user.title = left === null ? "token without expiry" : `token valid for ${hours(left)}`;
  show(ui.signIn, false);
  show(ui.who);
  show(ui.workspace);
  show(ui.logBox);
  setError(ui.tokenError, "", ui.token);
  ui.token.value = "";
  session.threads.clear();
  ui.threadList.replaceChildren();
  addThreads(page);
  offerAgents(api);
  startFeed(token);
  const wanted = fragmentParam("thread");
  const first = wanted && session.threads.has(wanted) ? wanted : session.threads.keys().next().value;
  if (first) await selectThread(first);
  else showNoThread();
  if (fromLink) announce(`Signed in as ${claims.sub}.`);
}

function showSignIn(message = "", { keepToken = null } = {}) {
  session.feed?.stop("signed out");
  session.feed = null;
  session.api = null;
  session.current = null;
  show(ui.workspace, false);
  show(ui.who, false);
  show(ui.logBox, false);
  show(ui.signIn);
  if (keepToken) ui.token.value = keepToken;
  setError(ui.tokenError, message, ui.token);
  ui.token.focus();
}

function signOut() {
  forgetToken();
  setFragmentParam("thread", null);
  showSignIn();
  announce("Signed out.");
}

// -- the live feed ----------------------------------------------------------------

function startFeed(token) {
  session.feed?.stop();
  const url = new URL("v1/ws", document.baseURI);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  session.feed = new LiveFeed(url.toString(), token, {
    onState: renderState,
    onEvent: (event) => {
      const feed = session.feed;
      const nearEnd = isNearEnd();
      timeline.add(event, { live: event.seq > session.subscribedHead });
      const thread = session.threads.get(event.thread_id);
      if (thread) thread.head_seq = Math.max(thread.head_seq ?? 0, event.seq);
      renderCounter(feed.thread);
      if (nearEnd) keepAtEnd();
    },
    onSubscribed: (frame) => {
      session.subscribedHead = Math.max(session.subscribedHead, frame.head_seq ?? 0);
      renderCounter(session.feed.thread);
    },
    onProblem: (text) => showNotice(text),
    onAuthFailed: (text) => {
      forgetToken();
      showSignIn(`${text} Sign in again with a fresh token.`);
    },
    log: addLog,
  });
  session.feed.start();
}

function renderState(state, detail) {
  if (ui.conn.dataset.state !== state) ui.conn.dataset.state = state;
  const text = STATE_TEXT[state] ?? state;
  // Only a change of state is announced; the detail changes too often for that.
  if (ui.connState.textContent !== text) ui.connState.textContent = text;
  ui.connDetail.textContent = detail ? `· ${detail}` : "";
  const waiting = state === RECONNECTING && session.feed?.retryAt;
  show(ui.retry, Boolean(waiting));
  clearInterval(session.retryTicker);
  session.retryTicker = null;
  if (waiting) {
    const tick = () => {
      const feed = session.feed;
      if (!feed?.retryAt) return;
      const s = Math.max(0, Math.ceil((feed.retryAt - Date.now()) / 1000));
      ui.connDetail.textContent = `· ${feed.detail}; retrying in ${s} s`;
    };
    tick();
    session.retryTicker = setInterval(tick, 500);
  }
}

function renderCounter(t) {
  if (!t) return;
  ui.counter.dataset.received = String(t.received);
  ui.counter.dataset.head = String(t.head);
  ui.counter.dataset.last = String(t.lastSeq);
  ui.counter.dataset.duplicates = String(t.duplicates);
  ui.countReceived.textContent = String(t.received);
  ui.countHead.textContent = String(t.head);
  const behind = t.head - t.lastSeq;
  const parts = [];
  if (t.startSeq > 0) parts.push(`from seq ${t.startSeq + 1}`);
  if (behind > 0) parts.push(`${behind} to go`);
  if (t.duplicates > 0) parts.push(`${t.duplicates} duplicates dropped`);
  ui.countLast.textContent = parts.join(" · ");
}

function addLog(text) {
  const now = new Date();
  const stamp = now.toTimeString().slice(0, 8);
  ui.log.append(h("li", {}, h("time", { class: "muted", text: stamp }), ` ${text}`));
  while (ui.log.children.length > LOG_LIMIT) ui.log.firstElementChild.remove();
}

// -- threads ----------------------------------------------------------------------

function addThreads(page, { prepend = false } = {}) {
  for (const thread of page.threads ?? []) {
    if (session.threads.has(thread.thread_id)) continue;
    session.threads.set(thread.thread_id, thread);
    const item = threadItem(thread);
    if (prepend) ui.threadList.prepend(item);
    else ui.threadList.append(item);
  }
  if (!prepend) session.nextBefore = page.next_before ?? null;
  show(ui.moreThreads, Boolean(session.nextBefore));
  show(ui.threadsEmpty, session.threads.size === 0);
}

function threadItem(thread) {
  const button = h(
    "button",
    {
      type: "button",
      class: "thread-button",
      dataset: { threadId: thread.thread_id },
      onclick: () => selectThread(thread.thread_id),
    },
    h("span", { class: "thread-name", text: thread.thread_id }),
    h("span", { class: "thread-meta muted", text: `created ${dayAndTime(thread.created_at)}` })
  );
  return h("li", {}, button);
}

async function selectThread(threadId) {
  const api = session.api;
  session.current = threadId;
  setFragmentParam("thread", threadId);
  for (const button of ui.threadList.querySelectorAll(".thread-button")) {
    if (button.dataset.threadId === threadId) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
  show(ui.noThread, false);
  show(ui.threadView);
  ui.threadId.textContent = threadId;
  hideNotice();
  ui.runStarted.textContent = "";
  let head = session.threads.get(threadId)?.head_seq ?? 0;
  try {
    const fresh = await api.getThread(threadId);
    head = fresh.head_seq;
    session.threads.set(threadId, fresh);
  } catch (error) {
    if (session.current === threadId) showNotice(describe(error));
  }
  // Another thread was picked, or the user signed out, meanwhile.
  if (session.current !== threadId || !session.feed) return;
  const start = Math.max(0, head - HISTORY_WINDOW);
  session.subscribedHead = head;
  timeline.reset(start);
  session.feed.follow(threadId, start);
  renderCounter(session.feed.thread);
  try {
    const runs = await api.listRuns(threadId);
    if (session.current === threadId) timeline.setRunInfo(runs.runs ?? []);
  } catch {
    // Run details only name agents of runs whose first events are out of view.
  }
}

function showNoThread() {
  show(ui.threadView, false);
  show(ui.noThread);
}

async function createThread(event) {
  event.preventDefault();
  const wanted = ui.newThreadId.value.trim();
  setError(ui.newThreadError, "", ui.newThreadId);
  try {
    const thread = await session.api.createThread(wanted || null);
    ui.newThreadId.value = "";
    addThreads({ threads: [thread] }, { prepend: true });
    await selectThread(thread.thread_id);
    announce(`Thread ${thread.thread_id} created.`);
  } catch (error) {
    const text =
      error instanceof ApiError && error.code === "thread_exists"
        ? "That thread ID is taken: choose another, or leave it empty."
        : describe(error);
    setError(ui.newThreadError, text, ui.newThreadId);
    ui.newThreadId.focus();
  }
}

async function moreThreads() {
  try {
    addThreads(await session.api.listThreads(session.nextBefore));
  } catch (error) {
    showNotice(describe(error));
  }
}

// -- runs -------------------------------------------------------------------------

async function startRun(event) {
  event.preventDefault();
  const threadId = session.current;
  const agent = ui.agent.value.trim();
  setError(ui.runError, "", ui.runInput);
  if (!agent) {
    setError(ui.runError, "Name the agent to run, for example demo.", ui.agent);
    ui.agent.focus();
    return;
  }
  ui.agent.setAttribute("aria-invalid", "false");
  let input;
  try {
    input = ui.runInput.value.trim() ? JSON.parse(ui.runInput.value) : {};
  } catch (error) {
    setError(ui.runError, `The input is not valid JSON: ${error.message}`, ui.runInput);
    ui.runInput.focus();
    return;
  }
  if (input === null || typeof input !== "object" || Array.isArray(input)) {
    setError(ui.runError, "The input must be a JSON object, like {\"prompt\": \"hi\"}.", ui.runInput);
    ui.runInput.focus();
    return;
  }
  const submit = ui.runForm.querySelector("button[type=submit]");
  submit.disabled = true;
  try {
    const run = await session.api.startRun(threadId, agent, input);
    ui.runStarted.textContent = `Run ${run.run_id} queued.`;
    announce(`Run of ${agent} queued.`);
    keepAtEnd();
  } catch (error) {
    let text = describe(error);
    if (error instanceof ApiError && error.code === "unknown_agent") {
      text = `No agent named "${agent}" is registered on this server. ${error.message}`;
    }
    setError(ui.runError, text, error.code === "unknown_agent" ? ui.agent : ui.runInput);
  } finally {
    submit.disabled = false;
  }
}

async function cancelRun(runId, button) {
  button.disabled = true;
  try {
    await session.api.cancelRun(runId);
  } catch (error) {
    if (!(error instanceof ApiError && error.code === "run_finished")) showNotice(describe(error));
  } finally {
    button.disabled = false;
  }
}

// -- small things -----------------------------------------------------------------

function describe(error) {
  if (error instanceof ApiError) {
    if (error.status === 401) {
      forgetToken();
      queueMicrotask(() => showSignIn(`Signed out: ${error.message}`));
    }
    return error.code ? `${error.message} (${error.code})` : error.message;
  }
  if (error instanceof Unreachable) return error.message;
  return `Something went wrong: ${error?.message ?? error}`;
}

function showNotice(text) {
  ui.notice.textContent = text;
  show(ui.notice);
}

function hideNotice() {
  ui.notice.textContent = "";
  show(ui.notice, false);
}

function announce(text) {
  ui.announcer.textContent = text;
}

function hours(seconds) {
  return seconds >= 3600 ? `${Math.floor(seconds / 3600)} h` : `${Math.ceil(seconds / 60)} min`;
}

function isNearEnd() {
  return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 120;
}

let scrollQueued = false;
function keepAtEnd() {
  if (scrollQueued) return;
  scrollQueued = true;
  requestAnimationFrame(() => {
    scrollQueued = false;
    window.scrollTo({ top: document.documentElement.scrollHeight });
  });
}

// -- wiring -----------------------------------------------------------------------

ui.signInForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const token = ui.token.value.trim();
  if (!token) {
    setError(ui.tokenError, "Paste a token first.", ui.token);
    ui.token.focus();
    return;
  }
  signIn(token);
});
ui.signOut.addEventListener("click", signOut);
ui.retry.addEventListener("click", () => session.feed?.retryNow());
ui.newThread.addEventListener("submit", createThread);
ui.moreThreads.addEventListener("click", moreThreads);
ui.runForm.addEventListener("submit", startRun);
ui.runInput.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    ui.runForm.requestSubmit();
  }
});
window.addEventListener("hashchange", () => {
  const linked = takeTokenFromAddress();
  if (linked) {
    signIn(linked, { fromLink: true });
    return;
  }
  const wanted = fragmentParam("thread");
  if (session.api && wanted && wanted !== session.current && session.threads.has(wanted)) {
    selectThread(wanted);
  }
});

const linked = takeTokenFromAddress();
const token = linked ?? savedToken();
if (token) signIn(token, { fromLink: Boolean(linked) });
else showSignIn();
