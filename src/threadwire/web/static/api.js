// The HTTP API (/v1) with the user's token. Every refusal is problem+json with a
// `code`; it becomes an ApiError that the page shows as it is.

export class ApiError extends Error {
  constructor(status, problem) {
    const detail = problem?.detail || problem?.title || `the server answered ${status}`;
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.code = typeof problem?.code === "string" ? problem.code : null;
    this.problem = problem;
  }
}

/** A network failure: the server could not be reached at all. */
export class Unreachable extends Error {}

export class Api {
  /** `base`: the page's own address; paths resolve against it (works behind a prefix). */
  constructor(token, base = document.baseURI) {
    this.token = token;
    this.base = base;
  }

  async request(method, path, body) {
    const headers = { Authorization: `Bearer ${this.token}`, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(new URL(path, this.base), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch (error) {
      throw new Unreachable(`Cannot reach the server (${error.message}).`);
    }
    const text = await response.text();
    let payload = null;
    try {
      payload = text ? JSON.parse(text) : null;
    } catch {
      payload = null;
    }
    if (!response.ok) {
      const problem = payload && typeof payload === "object" ? payload : { title: text.slice(0, 200) };
      throw new ApiError(response.status, problem);
    }
    return payload;
  }

  listAgents() {
    return this.request("GET", "v1/agents");
  }

  listThreads(before = null, limit = 50) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (before) query.set("before", before);
    return this.request("GET", `v1/threads?${query}`);
  }

  createThread(threadId = null) {
    return this.request("POST", "v1/threads", threadId ? { thread_id: threadId } : {});
  }

  getThread(threadId) {
    return this.request("GET", `v1/threads/${encodeURIComponent(threadId)}`);
  }

  listRuns(threadId, limit = 100) {
    return this.request("GET", `v1/threads/${encodeURIComponent(threadId)}/runs?limit=${limit}`);
  }

  startRun(threadId, agent, input) {
    return this.request("POST", `v1/threads/${encodeURIComponent(threadId)}/runs`, {
      agent,
      input,
    });
  }

  cancelRun(runId) {
    return this.request("POST", `v1/runs/${encodeURIComponent(runId)}/cancel`);
  }
}
