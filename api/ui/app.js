// The dashboard: plain ES modules, no build step. Every data call carries the key the operator
// logged in with (sessionStorage); the live views read the SSE routes through fetch() streaming,
// since EventSource cannot send an Authorization header. Any key may log in: what the page
// shows and offers follows its role (GET /whoami); a key that is not an admin's sees its own
// executions only (the API answers it so), without the operators' pages.
const KEY = "agentfield-arq-key";
const ME = "agentfield-arq-me";
const PAGE = 50;
const SHOWN_BYTES = 20000;
const HOUR_MS = 3600 * 1000;
const STATUSES = ["queued", "running", "waiting", "succeeded", "failed", "cancelled", "timeout"];
// A timeline's times, to the millisecond (steps are often less than a second apart).
const STAMP = { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
  second: "2-digit", fractionalSecondDigits: 3, hour12: false };
const TERMINAL = new Set(["succeeded", "failed", "cancelled", "timeout"]);
const main = document.getElementById("main");
let leave = () => {};
const show = (...children) => main.replaceChildren(...children.flat().filter((c) => c != null));
const me = () => JSON.parse(sessionStorage.getItem(ME) || "{}");
const isAdmin = () => me().role === "admin";

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error || `HTTP ${status}`);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY)}`, ...options.headers };
  const answer = await fetch(path, { ...options, headers });
  const type = answer.headers.get("content-type") || "";
  const body = type.includes("json") ? await answer.json() : await answer.text();
  if (answer.status === 401) {
    logout("The key was refused: it is unknown or revoked.");
  }
  if (!answer.ok) throw new ApiError(answer.status, body);
  return body;
}

// Server-sent events over fetch(): calls onEvent(name, data) until `signal` aborts,
// reconnecting with Last-Event-ID after a drop so that no event is missed (`first` may name
// where to start: {"Last-Event-ID": id}). A refusal (4xx) rejects the returned promise.
async function stream(path, onEvent, signal, first = {}) {
  let last = first["Last-Event-ID"] || null;
  const live = document.getElementById("live");
  while (!signal.aborted) {
    try {
      const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY)}` };
      if (last) headers["Last-Event-ID"] = last;
      const answer = await fetch(path, { headers, signal });
      if (answer.status === 401) return logout("The key was refused: it is unknown or revoked.");
      if (!answer.ok) throw new ApiError(answer.status, await answer.json());
      live.hidden = false;
      const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = { name: "message", data: "" };
          for (const line of block.split("\n")) {
            if (line.startsWith("id: ")) last = line.slice(4);
            else if (line.startsWith("event: ")) event.name = line.slice(7);
            else if (line.startsWith("data: ")) event.data += line.slice(6);
          }
          if (event.data) onEvent(event.name, JSON.parse(event.data));
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError) throw error;
    }
    live.hidden = true;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

// A function that runs `fn` at most once per `ms`, the last call winning.
function throttle(fn, ms) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, ms);
  };
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value);
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined));
  return node;
}

const badge = (status) => el("span", { class: `badge ${status}`, "data-status": status }, status);
const link = (id) => el("a", { href: `#/executions/${encodeURIComponent(id)}` }, id);
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
const failure = (error) => el("p", { class: "error", role: "alert" }, error.message);

function logout(message) {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(ME);
  leave();
  renderLogin(message);
}

function renderLogin(message) {
  document.getElementById("nav").hidden = true;
  const input = el("input", { type: "password", name: "key", placeholder: "afk_…", required: true });
  const note = el("p", { class: "error", role: "alert", id: "login-error" }, message || "");
  const form = el(
    "form",
    { class: "login", onsubmit: (e) => login(e, input.value.trim(), note) },
    el("h1", {}, "Log in"),
    el("label", {}, "API key (an admin key sees every execution, any other key its own)", input),
    el("button", { type: "submit" }, "Log in"),
    note,
  );
  show(form);
  input.focus();
}

async function login(event, key, note) {
  event.preventDefault();
  const answer = await fetch("/api/v1/whoami", { headers: { Authorization: `Bearer ${key}` } });
  if (answer.ok) {
    sessionStorage.setItem(KEY, key);
    sessionStorage.setItem(ME, JSON.stringify(await answer.json()));
    route();
    return;
  }
  note.textContent =
    answer.status === 401
      ? "The key was refused: it is unknown or revoked."
      : `The API answered ${answer.status}; try again.`;
}

// What a refused event stream leaves (the API down, an execution gone): the page, without
// live updates, saying why.
function unfollowed(error) {
  if (!(error instanceof ApiError)) return;
  document.getElementById("live").hidden = true;
  main.append(el("p", { class: "muted", id: "not-live" }, `Not live: ${error.message}; reload to refresh.`));
}

// ------------------------------------------------------------------------------ overview

function parseMetrics(textBody) {
  const values = {};
  for (const line of textBody.split("\n")) {
    const m = line.match(/^(\w+)(?:\{(.*)\})? ([0-9.eE+-]+|NaN)$/);
    if (!m) continue;
    const labels = Object.fromEntries(
      [...(m[2] || "").matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]),
    );
    (values[m[1]] ||= []).push({ labels, value: Number(m[3]) });
  }
  return values;
}

const sum = (rows) => (rows || []).reduce((total, r) => total + r.value, 0);

// Samples of the ended-executions counter, kept for the session (for the throughput card).
function samples() {
  const kept = JSON.parse(sessionStorage.getItem("agentfield-arq-samples") || "[]");
  return kept.filter((s) => s.t > Date.now() - HOUR_MS);
}

// The last hour as stacked bars, one per minute: the executions created in it by status now
// (GET /activity, read from the server's indexes, so the whole hour shows on first load).
function chart(minutes) {
  const ns = "http://www.w3.org/2000/svg";
  const w = 720, h = 200, pad = 34;
  const node = (tag, attrs, textBody) => {
    const n = document.createElementNS(ns, tag);
    for (const [name, value] of Object.entries(attrs)) n.setAttribute(name, value);
    if (textBody !== undefined) n.textContent = textBody;
    return n;
  };
  const svg = node("svg", { viewBox: `0 0 ${w} ${h + 34}`, class: "chart", role: "img",
    "aria-label": "executions by status over the last hour" });
  const total = (m) => STATUSES.reduce((t, s) => t + (m.counts[s] || 0), 0);
  const top = Math.max(1, ...minutes.map(total));
  const slot = (w - 2 * pad) / Math.max(minutes.length, 1);
  svg.append(node("path", { d: `M${pad} ${pad / 2} V${h} H${w - pad}`, class: "axis" }));
  svg.append(node("text", { x: 2, y: pad / 2 + 8 }, String(top)));
  minutes.forEach((m, i) => {
    let y = h;
    const group = node("g", { "data-minute": m.at, "data-total": total(m) });
    group.append(node("title", {}, `${new Date(m.at).toLocaleTimeString()}: ` +
      STATUSES.filter((s) => m.counts[s]).map((s) => `${m.counts[s]} ${s}`).join(", ")));
    for (const status of STATUSES) {
      const n = m.counts[status] || 0;
      if (!n) continue;
      const height = (n / top) * (h - pad);
      y -= height;
      group.append(node("rect", { x: pad + i * slot + 1, y, width: Math.max(slot - 2, 1), height,
        class: `bar ${status}` }));
    }
    svg.append(group);
  });
  for (const [label, i] of [["-60 min", 0], ["-30 min", 30], ["now", minutes.length]]) {
    svg.append(node("text", { x: pad + i * slot, y: h + 14, "text-anchor": "middle" }, label));
  }
  STATUSES.forEach((status, i) => {
    svg.append(node("text", { x: pad + i * 95, y: h + 30, class: `legend ${status}` }, `■ ${status}`));
  });
  return svg;
}

function card(label, value, name) {
  return el("div", { class: "card" }, el("span", {}, label), el("strong", { "data-metric": name }, String(value)));
}

async function overview(signal) {
  show(el("h1", {}, "Overview"), el("p", {}, "Loading…"));
  const draw = async () => {
    const [health, metricsText, activity] = await Promise.all([
      api("/api/v1/health?detail=1"),
      api("/metrics"),
      api("/api/v1/activity"),
    ]);
    const m = parseMetrics(metricsText);
    const by = Object.fromEntries((m.agentfield_arq_executions || []).map((r) => [r.labels.status, r.value]));
    const ended = sum(m.agentfield_arq_executions_ended_total);
    const kept = samples();
    const previous = kept.findLast((s) => s.t < Date.now() - 50000) || kept[0];
    kept.push({ t: Date.now(), ended });
    sessionStorage.setItem("agentfield-arq-samples", JSON.stringify(kept));
    const perMinute = previous
      ? (((ended - previous.ended) * 60000) / Math.max(1, Date.now() - previous.t)).toFixed(1)
      : "…";
    const q = health.queue;
    show(
      el("h1", {}, "Overview"),
      el(
        "div",
        { class: "cards" },
        card("Queued executions", q.executions, "queue-executions"),
        card("Queued webhooks", q.webhook_deliveries + q.webhook_notices, "queue-webhooks"),
        card("In flight", by.running || 0, "running"),
        card("Ended per minute", perMinute, "throughput"),
        card("Oldest queued", `${q.oldest_queued_s.toFixed(1)} s`, "oldest"),
        card("Workers alive", health.workers_alive, "workers"),
        card("Nodes active", health.nodes_active, "nodes"),
        card("Dead webhooks", sum(m.agentfield_arq_webhook_dead), "dead"),
      ),
      el("h2", {}, "Executions by status, last hour (each minute's new executions, by status now)"),
      chart(activity.minutes),
    );
  };
  await draw();
  const redraw = throttle(() => draw().catch(() => {}), 1000);
  const timer = setInterval(redraw, 10000);
  signal.addEventListener("abort", () => clearInterval(timer));
  stream("/api/v1/events", redraw, signal).catch(unfollowed);
}

// ---------------------------------------------------------------------------- executions

const FILTERS = ["status", "target", "node", "run_id", "parent", "since", "until"];

async function executions(signal, params) {
  const query = new URLSearchParams();
  for (const name of FILTERS) if (params.get(name)) query.set(name, params.get(name));
  const cursors = params.get("cursor") ? params.get("cursor").split(",") : [];
  const body = el("tbody");
  const pager = el("div", { class: "pager" });
  const form = el(
    "form",
    {
      class: "filters",
      onsubmit: (e) => {
        e.preventDefault();
        const next = new URLSearchParams();
        for (const [name, value] of new FormData(e.target)) if (value) next.set(name, value);
        location.hash = `#/executions?${next}`;
      },
    },
    el(
      "label",
      {},
      "status",
      el("select", { name: "status" }, el("option", { value: "" }, "any"),
        STATUSES.map((s) => el("option", { value: s, selected: params.get("status") === s }, s))),
    ),
    FILTERS.slice(1).map((name) =>
      el("label", {}, name, el("input", { name, value: params.get(name) || "", size: 14 })),
    ),
    el("button", { type: "submit" }, "Filter"),
  );
  show(
    el("h1", {}, "Executions"),
    form,
    el("table", { class: "executions" },
      el("thead", {}, el("tr", {}, ["Execution", "Status", "Target", "Run", "Created", "Duration"].map((h) => el("th", {}, h)))),
      body),
    pager,
  );
  const rows = new Map();
  const row = (x) =>
    el("tr", { "data-id": x.execution_id },
      el("td", {}, link(x.execution_id)),
      el("td", { class: "status" }, badge(x.status)),
      el("td", {}, x.target),
      el("td", {}, el("a", { href: `#/executions?run_id=${encodeURIComponent(x.run_id)}` }, x.run_id)),
      el("td", {}, when(x.created_at)),
      el("td", {}, x.duration_ms == null ? "" : `${x.duration_ms} ms`));
  const load = async () => {
    const page = new URLSearchParams(query);
    page.set("limit", PAGE);
    if (cursors.length) page.set("cursor", cursors[cursors.length - 1]);
    const answer = await api(`/api/v1/executions?${page}`);
    rows.clear();
    body.replaceChildren(...answer.executions.map((x) => {
      const r = row(x);
      rows.set(x.execution_id, r);
      return r;
    }));
    if (!answer.executions.length) body.append(el("tr", {}, el("td", { colspan: 6 }, "No executions.")));
    const to = (list) => {
      const next = new URLSearchParams(query);
      if (list.length) next.set("cursor", list.join(","));
      return `#/executions?${next}`;
    };
    pager.replaceChildren(
      cursors.length ? el("a", { href: to(cursors.slice(0, -1)), class: "newer" }, "← Newer") : "",
      answer.next_cursor ? el("a", { href: to([...cursors, answer.next_cursor]), class: "older" }, "Older →") : "",
    );
  };
  await load();
  // Live: a known row changes its status in place; on the first page a new execution reloads
  // that one page (never more than PAGE rows are read).
  const reload = throttle(() => load().catch(() => {}), 500);
  const live = new URLSearchParams();
  for (const name of ["target", "run_id"]) if (query.get(name)) live.set(name, query.get(name));
  stream(`/api/v1/events?${live}`, (name, data) => {
    const known = rows.get(data.execution_id);
    if (known && STATUSES.includes(name)) {
      if (query.get("status") && query.get("status") !== name) reload();
      else known.querySelector(".status").replaceChildren(badge(name));
      if (TERMINAL.has(name)) reload();
    } else if (!known && !cursors.length && name === "queued") {
      reload();
    }
  }, signal).catch(unfollowed);
}

// ------------------------------------------------------------------------- one execution

function json(label, value) {
  let textBody = JSON.stringify(value, null, 2);
  const size = textBody.length;
  const truncated = size > SHOWN_BYTES;
  if (truncated) textBody = textBody.slice(0, SHOWN_BYTES);
  return el("details", { class: "json", open: !truncated },
    el("summary", {}, `${label} (${size} characters${truncated ? `, first ${SHOWN_BYTES} shown` : ""})`),
    el("pre", {}, textBody, truncated ? "\n…" : ""));
}

function tree(nodes, current) {
  return el("ul", { class: "tree" }, nodes.map((n) =>
    el("li", {},
      n.execution_id === current ? el("strong", {}, n.execution_id) : link(n.execution_id),
      " ", badge(n.status), " ", el("span", { class: "muted" }, n.target),
      n.children.length ? tree(n.children, current) : null)));
}

// One step of the timeline: when (unix ms), what, and what else is known of it.
function step(ms, kind, status, what, detail) {
  return { ms, kind, status, what, detail };
}

function lifecycleStep(e, first) {
  const at = e.attempt ? ` (attempt ${e.attempt})` : "";
  if (e.status === "queued" && first) return step(e.ms, "lifecycle", "queued", "queued", "");
  if (e.status === "queued") return step(e.ms, "lifecycle", "queued", `handed back${at}, queued again`, e.reason || "");
  if (e.status === "running") return step(e.ms, "lifecycle", "running", `attempt ${e.attempt || "?"} started`, e.worker ? `worker ${e.worker}` : "");
  if (e.status === "accepted") return step(e.ms, "lifecycle", "accepted", `accepted by the agent${at}`, "202: waiting for its callback");
  if (e.status === "progress") {
    const shown = e.progress == null ? "" : JSON.stringify(e.progress);
    return step(e.ms, "lifecycle", "progress", `progress${at}`, [e.message, shown].filter(Boolean).join(" "));
  }
  return step(e.ms, "lifecycle", e.status, `${e.status}${at}`, "");
}

// The whole timeline: the stored history, the notes and the webhook attempts, by time.
function steps(history, x) {
  const all = history.entries.map((e, i) => lifecycleStep(e, i === 0));
  for (const n of x.notes || []) {
    all.push(step(Date.parse(n.timestamp), "note", "note", "note", [n.message, ...(n.tags || []).map((t) => `#${t}`)].join(" ")));
  }
  for (const w of x.webhook_events || []) {
    const how = [w.http_status ? `HTTP ${w.http_status}` : "", w.duration_ms != null ? `${w.duration_ms} ms` : "", w.error_message || ""];
    all.push(step(Date.parse(w.created_at), "webhook", w.status, `webhook ${w.event_type} attempt ${w.attempt ?? ""}: ${w.status}`, how.filter(Boolean).join(", ")));
  }
  return all.sort((a, b) => a.ms - b.ms);
}

const stepRow = (s) => el("li", { "data-kind": s.kind, "data-status": s.status },
  el("time", {}, new Date(s.ms).toLocaleString(undefined, STAMP)), " ", el("strong", {}, s.what),
  s.detail ? el("span", { class: "muted" }, ` ${s.detail}`) : null);

async function execution(signal, id) {
  const path = `/api/v1/executions/${encodeURIComponent(id)}`;
  let x, input, history;
  try {
    [x, input, history] = await Promise.all([api(path), api(`${path}/input`), api(`${path}/history`)]);
  } catch (error) {
    show(el("h1", {}, id), failure(error));
    return;
  }
  const message = el("p", { class: "notice", role: "status" });
  const act = (label, action, after) =>
    el("button", {
      type: "button",
      class: label.toLowerCase().replace(/ /g, "-"),
      onclick: async () => {
        try {
          after(await api(`${path}/${action}`, { method: "POST" }));
        } catch (error) {
          message.textContent = error.message;
        }
      },
    }, label);
  const timeline = el("ol", { class: "timeline" }, steps(history, x).map(stepRow));
  const fields = ["status", "target", "type", "run_id", "parent_execution_id", "retry_of", "created_at",
    "started_at", "completed_at", "duration_ms", "error", "webhook_status", "webhook_next_attempt_at"];
  // Whoever sees an execution submitted it or is an admin: both may cancel and retry it;
  // a webhook is redriven by an admin only.
  const webhookDown = x.webhook_status === "failed" || x.webhook_status === "dead";
  show(
    el("h1", {}, "Execution ", el("code", {}, x.execution_id)),
    el("div", { class: "actions" },
      TERMINAL.has(x.status) ? null : act("Cancel", "cancel", () => route()),
      TERMINAL.has(x.status)
        ? act("Retry", "retry", (a) => { location.hash = `#/executions/${a.execution_id}`; })
        : null,
      webhookDown && isAdmin() ? act("Redrive webhook", "webhook/retry", () => route()) : null),
    message,
    el("table", { class: "fields" }, fields.filter((f) => x[f] != null && x[f] !== "").map((f) =>
      el("tr", {}, el("th", {}, f), el("td", { "data-field": f }, f === "status" ? badge(x.status) : String(x[f]))))),
    el("div", { class: "input" }, json("Input", input)),
    x.result === undefined ? null : el("div", { class: "result" }, json("Result", x.result)),
    x.progress == null ? null : json("Progress", x.progress),
    el("h2", {}, "Timeline"),
    history.dropped
      ? el("p", { class: "muted" }, `${history.dropped} steps after the first are no longer kept.`)
      : null,
    timeline,
    el("h2", {}, "Webhook attempts"),
    x.webhook_events?.length
      ? el("table", {}, el("tr", {}, ["At", "Event", "Status", "Attempt", "HTTP", "Error"].map((h) => el("th", {}, h))),
        x.webhook_events.map((w) => el("tr", {}, el("td", {}, when(w.created_at)), el("td", {}, w.event_type),
          el("td", {}, w.status), el("td", {}, w.attempt ?? ""), el("td", {}, w.http_status ?? ""), el("td", {}, w.error_message ?? ""))))
      : el("p", { class: "muted" }, x.webhook_registered ? "No attempt yet." : "No webhook."),
    el("h2", {}, "Run ", el("code", {}, x.run_id)),
    el("div", { id: "run" }, "Loading…"),
  );
  api(`/api/v1/runs/${encodeURIComponent(x.run_id)}`)
    .then((run) => document.getElementById("run")?.replaceChildren(
      el("p", {}, badge(run.status), ` ${run.count} executions${run.truncated ? " (truncated)" : ""}`),
      tree(run.roots, x.execution_id)))
    .catch((error) => document.getElementById("run")?.replaceChildren(failure(error)));
  if (!TERMINAL.has(x.status)) {
    // Each event after the last stored step (none is missed: the stream resumes from it) has
    // the timeline read again from the stored history; the end reloads the page.
    const headers = history.last_event_id ? { "Last-Event-ID": history.last_event_id } : {};
    const reread = async () => {
      const [now, again] = await Promise.all([api(path), api(`${path}/history`)]);
      timeline.replaceChildren(...steps(again, now).map(stepRow));
    };
    const refresh = throttle(() => reread().catch(() => {}), 300);
    stream(`${path}/events`, (name) => {
      if (TERMINAL.has(name)) route();
      else if (name !== "state") refresh();
    }, signal, headers).catch(unfollowed);
  }
}

// -------------------------------------------------------------------- webhooks and nodes

async function webhooks(signal, params) {
  const cursor = params.get("cursor");
  const query = new URLSearchParams({ limit: PAGE });
  if (cursor) query.set("cursor", cursor);
  const page = await api(`/api/v1/webhooks/dead?${query}`);
  const message = el("p", { class: "notice", role: "status" });
  show(
    el("h1", {}, "Dead webhooks"),
    message,
    page.deliveries.length
      ? el("table", { class: "dead" },
        el("tr", {}, ["Execution", "Target", "URL", "Attempts", "Last error", "Failed at", ""].map((h) => el("th", {}, h))),
        page.deliveries.map((d) => el("tr", { "data-id": d.execution_id },
          el("td", {}, link(d.execution_id)), el("td", {}, d.target), el("td", {}, d.url),
          el("td", {}, d.attempts), el("td", {}, d.last_error ?? `HTTP ${d.last_http_status ?? ""}`),
          el("td", {}, when(d.failed_at)),
          el("td", {}, el("button", {
            type: "button",
            class: "redrive",
            onclick: async (e) => {
              try {
                const a = await api(`/api/v1/executions/${d.execution_id}/webhook/retry`, { method: "POST" });
                e.target.replaceWith(badge(a.webhook_status));
                message.textContent = `Webhook of ${d.execution_id} queued again.`;
              } catch (error) {
                message.textContent = error.message;
              }
            },
          }, "Redrive")))))
      : el("p", { class: "muted" }, "No dead webhook."),
    page.next_cursor ? el("a", { href: `#/webhooks?cursor=${encodeURIComponent(page.next_cursor)}` }, "Older →") : null,
  );
}

async function nodes() {
  const list = await api("/api/v1/nodes");
  const names = (specs) => (specs || []).map((s) => s.id || s.name).join(", ");
  show(
    el("h1", {}, `Nodes (${list.count})`),
    el("table", { class: "nodes" },
      el("tr", {}, ["Node", "Status", "Owner", "Base URL", "Reasoners", "Skills", "Registered",
        "Last heartbeat", "Lease until"].map((h) => el("th", {}, h))),
      list.nodes.map((n) => el("tr", { "data-id": n.id },
        el("td", {}, el("a", { href: `#/executions?node=${encodeURIComponent(n.id)}` }, n.id)),
        el("td", {}, badge(n.status || n.health_status)),
        el("td", { "data-field": "owner", title: n.owner }, n.owner ? n.owner_name || n.owner : el("span", { class: "muted" }, "none")),
        el("td", {}, n.base_url),
        el("td", {}, names(n.reasoners)), el("td", {}, names(n.skills)),
        el("td", {}, when(n.registered_at)), el("td", {}, when(n.last_heartbeat)),
        el("td", { "data-field": "lease" }, when(n.lease_expires_at))))),
  );
}

// -------------------------------------------------------------------------------- router

async function route() {
  leave();
  if (!sessionStorage.getItem(KEY)) return renderLogin();
  document.getElementById("nav").hidden = false;
  const who = me();
  document.getElementById("who").textContent = `${who.name || who.key_id} (${who.role})`;
  for (const a of document.querySelectorAll("#nav [data-admin]")) a.hidden = !isAdmin();
  const controller = new AbortController();
  leave = () => controller.abort();
  const [path, search] = location.hash.slice(1).split("?");
  const params = new URLSearchParams(search || "");
  const parts = (path || "/").split("/").filter(Boolean);
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("here", a.getAttribute("href") === `#/${parts[0] || ""}`);
  }
  try {
    if (parts[0] === "executions" && parts[1]) await execution(controller.signal, decodeURIComponent(parts[1]));
    else if (parts[0] === "executions") await executions(controller.signal, params);
    else if (parts[0] === "webhooks" && isAdmin()) await webhooks(controller.signal, params);
    else if (parts[0] === "nodes") await nodes();
    else if (isAdmin()) await overview(controller.signal);
    else await executions(controller.signal, params);
  } catch (error) {
    if (!controller.signal.aborted && sessionStorage.getItem(KEY)) main.append(failure(error));
  }
}

document.getElementById("logout").addEventListener("click", () => logout(""));
window.addEventListener("hashchange", route);
route();
