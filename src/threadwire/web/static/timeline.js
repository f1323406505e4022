// The thread's events, grouped by run. One row per event, except a tool call (its
// tool_executing and tool_completed share a row, with the duration) and consecutive
// agent_message chunks (one text). Every row's seq button opens the events' details:
// seq, type, time, event ID and the canonical run ID.

import { clock, copyText, duration, h, oneLine, prettyJson } from "./dom.js";

const STATUS_BY_TYPE = {
  run_queued: "queued",
  agent_started: "running",
  agent_completed: "completed",
  agent_error: "failed",
  run_cancelled: "cancelled",
};
const FINISHED = new Set(["completed", "failed", "cancelled"]);

export class Timeline {
  /** root: the element to fill; onCancel(runId): asked by a run's Cancel button. */
  constructor(root, { onCancel, announce }) {
    this.root = root;
    this.onCancel = onCancel;
    this.announce = announce;
    this.runs = new Map();
    this.runInfo = new Map();
    this.count = 0;
    this.empty = null;
  }

  /** Start over for a thread shown from `startSeq` on (events with a larger seq). */
  reset(startSeq = 0) {
    this.runs.clear();
    this.runInfo.clear();
    this.count = 0;
    this.root.replaceChildren();
    if (startSeq > 0) {
      this.root.append(
        h("p", { class: "muted older", text: `Events up to seq ${startSeq} are older than this view.` })
      );
    }
    this.empty = h("p", { class: "empty", text: "No events yet. Start a run above." });
    this.root.append(this.empty);
  }

  /** What the API knows of the thread's runs (agent, status), for runs seen mid-way. */
  setRunInfo(runs) {
    for (const run of runs) {
      this.runInfo.set(run.run_id, run);
      const group = this.runs.get(run.run_id);
      if (group && !group.agent) this.#setAgent(group, run.agent);
      if (group && group.status === "unknown") this.#setStatus(group, run.status);
    }
  }

  /** Add the next event (in seq order). `live`: it just happened (not history). */
  add(event, { live = false } = {}) {
    this.count += 1;
    if (this.empty) {
      this.empty.remove();
      this.empty = null;
    }
    const group = this.runs.get(event.run_id) ?? this.#newRun(event);
    const data = event.data && typeof event.data === "object" ? event.data : {};
    const type = String(event.type);
    const status = STATUS_BY_TYPE[type];
    if (status) {
      if (typeof data.agent === "string" && !group.agent) this.#setAgent(group, data.agent);
      this.#setStatus(group, status, event.ts);
      if (live && FINISHED.has(status)) this.#announceEnd(group, type, data);
    }
    if (type === "tool_completed") {
      const row = group.tools.get(toolKey(data));
      if (row) {
        group.tools.delete(toolKey(data));
        this.#addEvent(row, event);
        this.#fillTool(row);
        return;
      }
    }
    if (type === "agent_message" && group.lastRow?.kind === "message") {
      const row = group.lastRow;
      this.#addEvent(row, event);
      row.body.append(h("span", { text: textOf(data) }));
      return;
    }
    const row = this.#newRow(group, event, type);
    if (type === "tool_executing") {
      group.tools.set(toolKey(data), row);
      this.#fillTool(row);
    } else {
      fillRow(row, type, data);
    }
  }

  // -- runs ----------------------------------------------------------------------

  #newRun(event) {
    const runId = String(event.run_id);
    const titleId = `run-${this.runs.size + 1}`;
    const agentEl = h("span", { class: "agent", text: "run" });
    const badge = h("span", { class: "badge", dataset: { status: "unknown" }, hidden: true });
    const when = h("span", { class: "run-time muted" });
    const idText = h("code", { class: "run-id-text", text: runId });
    const copied = h("span", { class: "copied muted", "aria-live": "polite" });
    const copy = h("button", {
      type: "button",
      class: "small",
      text: "Copy run ID",
      onclick: async () => {
        const ok = await copyText(runId, idText);
        copied.textContent = ok ? "copied" : "selected: press Ctrl+C";
        setTimeout(() => (copied.textContent = ""), 2500);
      },
    });
    const cancel = h("button", {
      type: "button",
      class: "small danger",
      text: "Cancel run",
      hidden: true,
      onclick: () => this.onCancel(runId, cancel),
    });
    const list = h("ol", { class: "events" });
    const section = h(
      "section",
      { class: "run", "aria-labelledby": titleId, dataset: { runId } },
      h(
        "header",
        { class: "run-head" },
        h("h3", { id: titleId, class: "run-title" }, agentEl, " ", badge),
        when,
        h("div", { class: "run-id" }, h("span", { class: "muted", text: "run ID " }), idText, copy, copied),
        cancel
      ),
      list
    );
    this.root.append(section);
    const group = {
      runId,
      section,
      list,
      agentEl,
      badge,
      when,
      cancel,
      agent: null,
      status: "unknown",
      startTs: event.ts,
      tools: new Map(),
      lastRow: null,
    };
    this.runs.set(runId, group);
    const known = this.runInfo.get(runId);
    if (known) {
      this.#setAgent(group, known.agent);
      this.#setStatus(group, known.status);
    }
    this.#setWhen(group, null);
    return group;
  }

  #setAgent(group, agent) {
    if (typeof agent !== "string" || !agent) return;
    group.agent = agent;
    group.agentEl.textContent = agent;
  }

  #setStatus(group, status, ts = null) {
    if (typeof status !== "string") return;
    group.status = status;
    group.badge.dataset.status = status;
    group.badge.textContent = status;
    group.badge.hidden = false;
    group.section.dataset.status = status;
    group.cancel.hidden = status !== "queued" && status !== "running";
    if (FINISHED.has(status)) {
      group.cancel.hidden = true;
      this.#setWhen(group, ts);
    }
  }

  #setWhen(group, endTs) {
    const start = clock(group.startTs);
    const took = endTs ? duration(Date.parse(endTs) - Date.parse(group.startTs)) : "";
    group.when.textContent = took ? `${start} · took ${took}` : `from ${start}`;
  }

  #announceEnd(group, type, data) {
    const name = group.agent ?? "run";
    if (type === "agent_completed") this.announce(`Run of ${name} completed.`);
    else if (type === "agent_error") this.announce(`Run of ${name} failed: ${errorText(data)}`);
    else this.announce(`Run of ${name} was cancelled.`);
  }

  // -- rows ----------------------------------------------------------------------

  #newRow(group, event, type) {
    const kind = kindOf(type);
    const chip = h("button", {
      type: "button",
      class: "seq",
      "aria-expanded": "false",
    });
    const label = h("span", { class: "kind" });
    const body = h("div", { class: "body" });
    const when = h("time", { class: "when muted", datetime: String(event.ts ?? "") });
    when.textContent = clock(event.ts);
    const li = h("li", { class: `ev ev-${kind}` }, chip, label, body, when);
    const row = { li, chip, label, body, when, kind, events: [], panel: null };
    chip.addEventListener("click", () => this.#toggle(row));
    this.#addEvent(row, event);
    group.list.append(li);
    group.lastRow = row;
    return row;
  }

  #addEvent(row, event) {
    row.events.push(event);
    const seqs = row.events.map((e) => e.seq);
    row.li.dataset.seqs = seqs.join(" ");
    const first = seqs[0];
    const last = seqs[seqs.length - 1];
    row.chip.replaceChildren(
      `#${first}${last !== first ? `–${last}` : ""}`,
      h("span", { class: "visually-hidden", text: " details" })
    );
    if (row.panel && !row.panel.hidden) this.#fillPanel(row);
  }

  #toggle(row) {
    const open = row.chip.getAttribute("aria-expanded") !== "true";
    if (!row.panel) {
      row.panel = h("div", { class: "detail", id: `detail-${row.events[0].seq}`, hidden: true });
      row.chip.setAttribute("aria-controls", row.panel.id);
      row.li.append(row.panel);
    }
    if (open) this.#fillPanel(row);
    row.panel.hidden = !open;
    row.chip.setAttribute("aria-expanded", String(open));
  }

  #fillPanel(row) {
    row.panel.replaceChildren(...row.events.map((event) => eventDetail(event)));
  }

  #fillTool(row) {
    const [started, done] = row.events[0].type === "tool_executing" ? row.events : [null, row.events[0]];
    const head = (started ?? done).data ?? {};
    const name = typeof head.tool === "string" ? head.tool : "tool";
    row.label.textContent = "tool";
    const parts = [h("code", { class: "tool-name", text: name })];
    if (started && started.data && "args" in started.data) {
      parts.push(h("span", { class: "args", text: ` ${oneLine(started.data.args, 120)}` }));
    }
    const outcome = h("div", { class: "outcome" });
    if (!done) {
      outcome.append(h("span", { class: "pending", text: "running…" }));
    } else {
      const data = done.data ?? {};
      const ms =
        typeof data.duration_ms === "number"
          ? data.duration_ms
          : started
            ? Date.parse(done.ts) - Date.parse(started.ts)
            : null;
      const took = duration(ms);
      if ("error" in data && data.error !== null && data.error !== undefined) {
        row.li.classList.add("ev-failed");
        outcome.append(
          h("span", { class: "badge", dataset: { status: "failed" }, text: "error" }),
          " ",
          h("span", { class: "error-text", text: oneLine(data.error, 300) })
        );
      } else {
        outcome.append(
          h("span", { class: "badge", dataset: { status: "completed" }, text: "done" }),
          " ",
          h("span", { text: `→ ${oneLine(data.result, 200)}` })
        );
      }
      if (took) outcome.append(" ", h("span", { class: "took", text: took }));
    }
    row.body.replaceChildren(h("div", {}, ...parts), outcome);
  }
}

function fillRow(row, type, data) {
  const label = {
    run_queued: "queued",
    agent_started: "started",
    agent_thinking: "thinking",
    agent_message: "message",
    agent_completed: "completed",
    agent_error: "error",
    run_cancelled: "cancelled",
    tool_completed: "tool",
  }[type];
  row.label.textContent = label ?? type;
  const body = row.body;
  switch (type) {
    case "run_queued":
    case "agent_started":
      body.textContent = typeof data.agent === "string" ? `agent ${data.agent}` : "";
      break;
    case "agent_thinking":
    case "agent_message":
      body.append(h("span", { text: textOf(data) }));
      break;
    case "agent_completed":
      body.textContent = "result" in data ? oneLine(data.result, 400) : "";
      break;
    case "agent_error":
      row.li.classList.add("ev-failed");
      body.textContent = errorText(data);
      break;
    case "run_cancelled":
      body.textContent = typeof data.reason === "string" ? data.reason : "";
      break;
    case "tool_completed": {
      // Its tool_executing is older than this view.
      const name = typeof data.tool === "string" ? data.tool : "tool";
      const failed = data.error !== undefined && data.error !== null;
      if (failed) row.li.classList.add("ev-failed");
      body.append(
        h("code", { class: "tool-name", text: name }),
        ` ${failed ? oneLine(data.error, 300) : oneLine(data.result, 200)} `,
        h("span", { class: "took", text: duration(data.duration_ms) })
      );
      break;
    }
    default:
      body.textContent = oneLine(data, 300);
  }
}

function kindOf(type) {
  if (type === "tool_executing" || type === "tool_completed") return "tool";
  if (type === "agent_message") return "message";
  if (type === "agent_thinking") return "thinking";
  if (type === "agent_error") return "error";
  if (type === "run_cancelled") return "cancelled";
  if (type in STATUS_BY_TYPE) return "life";
  return "other";
}

function toolKey(data) {
  return String(data.call_id ?? data.call ?? data.tool ?? "");
}

function textOf(data) {
  return typeof data.text === "string" ? data.text : oneLine(data, 400);
}

function errorText(data) {
  const code = typeof data.code === "string" ? data.code : "error";
  const message = typeof data.message === "string" ? data.message : oneLine(data, 300);
  return `${code}: ${message}`;
}

function eventDetail(event) {
  const runId = String(event.run_id ?? "");
  const runCode = h("code", { text: runId });
  const copied = h("span", { class: "copied muted" });
  const pairs = [
    ["seq", h("code", { text: String(event.seq) })],
    ["type", h("code", { text: String(event.type) })],
    ["time", h("code", { text: String(event.ts ?? "") })],
    ["event ID", h("code", { text: String(event.event_id ?? "") })],
    [
      "run ID",
      h(
        "span",
        {},
        runCode,
        " ",
        h("button", {
          type: "button",
          class: "small",
          text: "Copy",
          "aria-label": `Copy run ID ${runId}`,
          onclick: async () => {
            copied.textContent = (await copyText(runId, runCode)) ? " copied" : " selected";
          },
        }),
        copied
      ),
    ],
  ];
  const legacy = event.data && event.data.legacy_run_id;
  if (typeof legacy === "string") pairs.push(["sent as", h("code", { text: legacy })]);
  return h(
    "div",
    { class: "event-detail" },
    h("dl", {}, ...pairs.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", {}, v)])),
    h("pre", { class: "data", text: prettyJson(event.data ?? {}) })
  );
}
