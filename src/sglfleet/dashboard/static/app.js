// sglfleet dashboard: polls /dashboard/api/stats, renders the tables and charts, and sends
// admin actions to /admin/*. The key lives only in sessionStorage (gone with the tab).

import { LineChart, formats } from "./charts.js";

const KEY_STORE = "sglfleet.dashboard.key";
const POLL_MS = 1500;
const STEP_S = 2;
const COLORS = ["#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2", "#dc2626", "#4b5563"];

const CHARTS = [
  { id: "requests_per_s", fields: ["requests_per_s"], format: formats.rate, minMax: 1 },
  { id: "ttft", fields: ["ttft_p50_s", "ttft_p99_s"], format: formats.seconds, minMax: 0.1 },
  { id: "output_tokens_per_s", fields: ["output_tokens_per_s"], format: formats.rate, minMax: 1 },
  { id: "error_rate", fields: ["error_rate"], format: formats.percent, minMax: 0.1 },
  { id: "cache_reuse", fields: ["cache_reuse"], format: formats.percent, minMax: 1 },
  { id: "cache_prediction_error", fields: ["cache_prediction_error"], format: formats.rate, minMax: 16 },
];

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else if (k === "onclick") node.addEventListener("click", v);
    else if (k === "background") node.style.background = v; // CSSOM: allowed by the page's CSP
    else node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c !== null && c !== undefined) node.append(c);
  }
  return node;
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n >= 10 || i === 0 ? n.toFixed(0) : n.toFixed(1)} ${units[i]}`;
}

function ago(ts, now) {
  if (!ts) return "";
  const s = Math.max(0, now - ts);
  return s < 60 ? `${s.toFixed(0)}s ago` : s < 3600 ? `${(s / 60).toFixed(0)}m ago` : `${(s / 3600).toFixed(1)}h ago`;
}

// --- key (sessionStorage only) -------------------------------------------------------------
function getKey() {
  return sessionStorage.getItem(KEY_STORE) || "";
}

function authHeaders() {
  const key = getKey();
  return key ? { authorization: `Bearer ${key}` } : {};
}

function showKeyState() {
  $("#key-state").textContent = getKey() ? "key set (this tab only)" : "no key";
}

function showMessage(text, kind) {
  const box = $("#message");
  box.textContent = text;
  box.className = kind;
  box.hidden = false;
}

// --- admin actions -------------------------------------------------------------------------
async function adminAction(label, method, path) {
  showMessage(`${label}…`, "info");
  let res;
  try {
    res = await fetch(path, { method, headers: authHeaders() });
  } catch (err) {
    showMessage(`${label}: gateway unreachable`, "error");
    return;
  }
  const body = await res.json().catch(() => null);
  if (res.ok) {
    showMessage(`${label}: done`, "ok");
  } else {
    const why = body && body.error && body.error.message ? body.error.message : res.statusText;
    showMessage(`${label}: ${res.status} ${why}`, "error");
  }
  poll();
}

function modelActions(m) {
  if (!m.managed) return el("td", { class: "actions muted", text: "external" });
  const name = encodeURIComponent(m.name);
  return el("td", { class: "actions" },
    el("button", { "data-action": "load", onclick: () => adminAction(`load ${m.name}`, "POST", `/admin/models/${name}/load`) }, "Load"),
    el("button", { "data-action": "unload", onclick: () => adminAction(`unload ${m.name}`, "POST", `/admin/models/${name}/unload`) }, "Unload"),
    el("button", { "data-action": "reset", title: "reset the crash circuit breaker", onclick: () => adminAction(`reset ${m.name}`, "DELETE", `/admin/crashes/${name}`) }, "Reset breaker"));
}

function workerActions(w) {
  const id = encodeURIComponent(w.id);
  const undo = w.draining;
  return el("td", { class: "actions" },
    el("button", {
      "data-action": undo ? "undrain" : "drain",
      onclick: () => adminAction(`${undo ? "resume" : "drain"} ${w.id}`, "POST", `/admin/workers/${id}/drain${undo ? "?undo=true" : ""}`),
    }, undo ? "Resume" : "Drain"));
}

// --- tables --------------------------------------------------------------------------------
// Rows are patched in place, cell by cell: a cell (and its buttons) that did not change
// stays the same DOM node, so a click is never lost to a re-render between polls.
function patchRows(tbody, rows) {
  const old = new Map([...tbody.children].map((r) => [r.dataset.key, r]));
  const out = rows.map((nr) => {
    const or = old.get(nr.dataset.key);
    if (!or || or.children.length !== nr.children.length) return nr;
    for (const a of [...or.attributes]) if (!nr.hasAttribute(a.name)) or.removeAttribute(a.name);
    for (const a of [...nr.attributes]) if (or.getAttribute(a.name) !== a.value) or.setAttribute(a.name, a.value);
    const oc = [...or.children];
    [...nr.children].forEach((c, i) => {
      if (!oc[i].isEqualNode(c)) or.replaceChild(c, oc[i]);
    });
    return or;
  });
  const current = [...tbody.children];
  if (out.length !== current.length || out.some((r, i) => r !== current[i])) tbody.replaceChildren(...out);
}

function stateCell(m) {
  const cell = el("td", { class: "state", "data-state": m.state }, el("span", { class: `badge ${m.state}`, text: m.state }));
  const busy = m.replicas.find((r) => r.state === "STARTING" || r.state === "BACKOFF") || m.replicas[0];
  if (m.state === "FATAL") {
    cell.append(el("span", { class: "reason FATAL-reason", text: m.failure || "crash circuit breaker open" }));
  } else if (m.state === "STARTING" && busy) {
    const detail = `${busy.phase}${busy.elapsed_s !== null ? ` · ${busy.elapsed_s.toFixed(1)}s` : ""}`;
    cell.append(el("span", { class: "reason muted", text: detail }), el("span", { class: "progress" }));
  } else if (m.state === "BACKOFF" && busy) {
    cell.append(el("span", { class: "reason", text: busy.reason || busy.phase_detail || "" }));
  }
  return cell;
}

// SGLang's own KV pool from its start-up log, next to the planner's prediction
function kvFigures(m) {
  const r = (m.replicas || []).find((x) => x.startup && x.startup.actual);
  if (!r) return null;
  const a = r.startup.actual, p = r.startup.predicted;
  const n = (v) => (v == null ? "–" : Number(v).toLocaleString());
  return el("span", { class: "reason muted", "data-kv": "startup",
    text: `KV tokens ${n(a.max_total_num_tokens)} (planned ${n(p && p.max_total_num_tokens)})` });
}

function renderModels(models) {
  const rows = models.map((m) => el("tr", { "data-key": `m:${m.name}`, "data-model": m.name },
    el("td", {}, el("strong", { text: m.name }),
      m.aliases.length ? el("span", { class: "reason muted", text: `aka ${m.aliases.join(", ")}` }) : null),
    stateCell(m),
    el("td", { text: m.engine }),
    el("td", { class: "num", text: `${m.workers.eligible} / ${m.workers.total}` }),
    el("td", { text: m.priority }),
    el("td", { class: "num", text: `${bytes(m.memory.estimated_bytes)} / ${bytes(m.memory.measured_bytes)}` },
      kvFigures(m)),
    el("td", { class: "num", "data-restarts": String(m.restarts), text: String(m.restarts) }),
    el("td", { class: "num", text: `${m.queue.active} / ${m.queue.queued}` }),
    modelActions(m)));
  patchRows($("#models tbody"), rows);
}

function healthBadge(w) {
  if (w.draining) return el("span", { class: "badge draining", text: "draining" });
  if (!w.ready) return el("span", { class: "badge STOPPED", text: "not ready" });
  return w.healthy ? el("span", { class: "badge ok", text: "healthy" }) : el("span", { class: "badge down", text: "unhealthy" });
}

function renderWorkers(workers, now) {
  const rows = workers.map((w) => el("tr", { "data-key": `w:${w.id}`, "data-worker": w.id, "data-model": w.model, "data-draining": String(w.draining) },
    el("td", { text: w.id }),
    el("td", { text: w.model }),
    el("td", { class: "muted", text: w.url }),
    el("td", { class: "health" }, healthBadge(w)),
    el("td", {}, el("span", { class: `badge ${w.breaker}`, text: w.breaker.replace("_", "-") })),
    el("td", { class: "num", text: String(w.inflight) }),
    el("td", { class: "num", text: String(w.queued) }),
    el("td", { class: "num", text: String(w.processed) }),
    el("td", { class: "error-text" }, w.last_error ? `${w.last_error} (${ago(w.last_error_at, now)})` : ""),
    workerActions(w)));
  patchRows($("#workers tbody"), rows.length ? rows
    : [el("tr", { "data-key": "none" }, el("td", { colspan: "10", class: "muted", text: "no workers" }))]);
}

// --- charts --------------------------------------------------------------------------------
function makeCharts() {
  const charts = {};
  for (const spec of CHARTS) {
    const canvas = document.querySelector(`canvas[data-chart="${spec.id}"]`);
    charts[spec.id] = { spec, chart: new LineChart(canvas, { format: spec.format, minMax: spec.minMax }) };
  }
  return charts;
}

function renderCharts(charts, data, colors) {
  const { span_s: span, step_s: step, series } = data.charts;
  const t1 = data.now;
  const t0 = t1 - span;
  for (const { spec, chart } of Object.values(charts)) {
    const lines = [];
    for (const [model, s] of Object.entries(series)) {
      spec.fields.forEach((field, i) => {
        lines.push({
          color: colors.get(model),
          dash: i > 0,
          t: s.t.map((t) => Math.min(t + step, t1)),
          v: s[field],
        });
      });
    }
    chart.draw({ t0, t1, lines });
  }
}

function renderLegend(names, colors) {
  const items = names.map((n) => el("span", { "data-legend": n }, el("span", { class: "swatch", background: colors.get(n) }), n));
  $("#legend").replaceChildren(...items);
}

// --- polling -------------------------------------------------------------------------------
const charts = makeCharts();
const colors = new Map();
let updates = 0;
let spanS = 300;
let timer = null;
let inFlight = false;

function assignColors(names) {
  for (const n of names) {
    if (!colors.has(n)) colors.set(n, COLORS[colors.size % COLORS.length]);
  }
}

function render(data) {
  const names = [...new Set([...data.models.map((m) => m.name), ...Object.keys(data.charts.series)])];
  assignColors(names);
  renderModels(data.models);
  renderWorkers(data.workers, data.now);
  renderLegend(names, colors);
  renderCharts(charts, data, colors);
  const ready = data.models.filter((m) => m.state === "READY").length;
  $("#summary").textContent = `v${data.gateway.version} · up ${Math.round(data.gateway.uptime_s)}s · ` +
    `${ready}/${data.models.length} models ready · ${data.workers.length} workers`;
  updates += 1;
  const stamp = $("#updated");
  stamp.dataset.updates = String(updates);
  stamp.textContent = `updated ${new Date(data.now * 1000).toLocaleTimeString()}`;
}

async function poll() {
  if (inFlight) return;
  inFlight = true;
  clearTimeout(timer);
  try {
    const res = await fetch(`/dashboard/api/stats?span_s=${spanS}&step_s=${STEP_S}`, { headers: authHeaders(), cache: "no-store" });
    if (res.status === 401 || res.status === 403) {
      showMessage("This gateway has API keys: enter an API or admin key above to see the fleet.", "error");
    } else if (!res.ok) {
      showMessage(`stats: ${res.status} ${res.statusText}`, "error");
    } else {
      render(await res.json());
    }
  } catch (err) {
    $("#updated").textContent = "gateway unreachable; retrying";
  } finally {
    inFlight = false;
    timer = setTimeout(poll, POLL_MS);
  }
}

$("#key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = $("#key-input");
  if (input.value.trim()) sessionStorage.setItem(KEY_STORE, input.value.trim());
  input.value = "";
  showKeyState();
  showMessage("key kept for this browser tab only", "info");
  poll();
});

$("#key-forget").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_STORE);
  showKeyState();
  showMessage("key forgotten", "info");
});

$("#span").addEventListener("change", (ev) => {
  spanS = Number(ev.target.value);
  poll();
});

window.addEventListener("resize", () => poll());
showKeyState();
poll();
