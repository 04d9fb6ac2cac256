// The reconciler web page: reads the daemon's JSON API and redraws every few seconds.
// Everything it needs is served by the daemon (no CDN); data is inserted with textContent
// only, never as HTML. Every request sends the API token typed in the header, if any.
// It never shows old data as if it were current: when a refresh fails, a banner says so and
// since when the rows are; while the daemon cannot fetch its repository, a banner gives git's
// message (the daemon masks every credential in it).
"use strict";

const REFRESH_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";
const state = { selected: null, run: null, timer: null, generation: 0, asOf: null, list: null };
// What the list shows, kept in the URL hash (#wf=NAME&q=TEXT&status=S&sort=KEY&dir=asc|desc)
// so a link reproduces the view.
const view = { q: "", status: "", sort: "name", dir: "asc" };
const STATUSES = ["Converged", "Progressing", "Pending", "Degraded", "Invalid", "Suspended", "Unknown", "Retired"];

// fetch() rejects only when no answer came at all: the daemon is down or the network is.
class Unreachable extends Error {}

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  }
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

const badge = (text) => el("span", { class: `badge ${text}` }, text);
const short = (rev) => (rev ? (rev.startsWith("dir-") ? rev.slice(0, 12) : rev.slice(0, 8)) : "");
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");

// Every request carries the token typed in the header (kept for the tab's session), reads
// included: a daemon whose reads need a token (--read-auth token) answers them too.
async function get(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  try {
    return await fetch(path, { ...options, headers });
  } catch (_) {
    throw new Unreachable("daemon unreachable");
  }
}

async function api(path, options = {}) {
  const response = await get(path, options);
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return body;
}

// Reads the page repeats every refresh (the list, the open workflow): each answer's ETag is
// sent back as If-None-Match, and a 304 (nothing changed) reuses the body kept from before, so
// an unchanged list of a thousand workflows costs a few hundred bytes, not the whole list.
const kept = new Map();

async function cachedApi(path) {
  const last = kept.get(path);
  const headers = last ? { "If-None-Match": last.etag } : {};
  const response = await get(path, { headers, cache: "no-store" });
  if (response.status === 304 && last) return last.body;
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  const etag = response.headers.get("ETag");
  if (etag) kept.set(path, { etag, body });
  else kept.delete(path);
  return body;
}

function token() { return sessionStorage.getItem("reconciler-token") || ""; }

async function sync(name, button) {
  button.disabled = true;
  const notice = $("#notice");
  try {
    const answer = await api(`/api/v1/workflows/${encodeURIComponent(name)}/sync`, { method: "POST" });
    notice.textContent = answer.message;
  } catch (err) {
    notice.textContent = `sync ${name}: ${err.message}`;
  } finally {
    button.disabled = false;
    refresh();
  }
}

// Approve or reject a run waiting at an approval gate; the comment goes into its journal.
async function decide(run, verdict, comment, buttons) {
  buttons.forEach((b) => { b.disabled = true; });
  const notice = $("#approval-notice");
  try {
    const headers = { "Content-Type": "application/json" };
    const answer = await api(`/api/v1/runs/${encodeURIComponent(run.id)}/${verdict}`,
      { method: "POST", headers, body: JSON.stringify({ comment, request: run.approval.request }) });
    notice.textContent = answer.message;
  } catch (err) {
    notice.textContent = `${verdict} run ${short(run.id)} of ${run.workflow}: ${err.message}`;
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
    refresh();
  }
}

// One card per run waiting: what it asks, why it started (with the drift that made it), who may
// decide, and the two buttons. The cards are redrawn only when the runs waiting change, so a
// comment being typed is not lost to the refresh.
function renderApprovals(data) {
  $("#approval-box").hidden = data.runs.length === 0;
  const list = $("#approval-list");
  const key = data.runs.map((r) => `${r.id}@${r.approval.requested_at}`).join(" ");
  if (list.dataset.key === key) return;
  list.dataset.key = key;
  list.replaceChildren(...data.runs.map((run) => {
    const a = run.approval;
    const comment = el("textarea", { rows: "1", placeholder: "comment (journaled)", "aria-label": `comment on run ${short(run.id)}` });
    const approve = el("button", { class: "approve" }, "Approve");
    const reject = el("button", { class: "reject" }, "Reject");
    approve.onclick = () => decide(run, "approve", comment.value, [approve, reject]);
    reject.onclick = () => decide(run, "reject", comment.value, [approve, reject]);
    const diffs = Array.isArray(a.diff) ? a.diff : [];
    const who = a.approvers.length ? a.approvers.join(", ") : "any operator";
    return el("article", { class: "approval", "data-run": run.id },
      el("p", {}, el("strong", { class: "clickable", onclick: () => select(run.workflow) }, run.workflow),
        ` run ${short(run.id)} waits in state `, el("code", {}, a.state), ` since ${when(a.requested_at)}`),
      a.message ? el("p", { class: "question" }, a.message) : "",
      el("p", { class: "muted" }, `started because: ${a.why || run.reason}; may decide: ${who}`
        + (run.requested_by ? `; requested by ${run.requested_by}` : "")),
      diffs.length ? el("div", { class: "scroll" }, el("table", { class: "diff" }, el("tbody", {},
        ...diffs.map((d) => el("tr", {},
          el("td", {}, el("code", {}, d.path)),
          el("td", {}, el("code", {}, JSON.stringify(d.desired))),
          el("td", {}, el("code", {}, d.missing ? "(missing)" : JSON.stringify(d.observed)))))))) : "",
      el("div", { class: "decide" }, comment, approve, reject));
  }));
}

// The change windows in force: "blocked until …", "open", or nothing when none applies.
function windowText(window) {
  if (!window) return "";
  const until = window.until ? ` until ${when(window.until)}` : "";
  return `${window.state}${until}`;
}

// Does `wf` match the filter text? Each word must match: `key=value` a label exactly (or
// `key=` any value of that label), anything else a part of the name or of a label.
function matches(wf, query) {
  const labels = Object.entries(wf.labels || {});
  return query.toLowerCase().split(/\s+/).filter(Boolean).every((word) => {
    const eq = word.indexOf("=");
    if (eq > 0) {
      const key = word.slice(0, eq), value = word.slice(eq + 1);
      return labels.some(([k, v]) => k.toLowerCase() === key && (value === "" || v.toLowerCase() === value));
    }
    return wf.name.toLowerCase().includes(word)
      || labels.some(([k, v]) => `${k}=${v}`.toLowerCase().includes(word));
  });
}

// The value a column sorts by; ties fall back to the name so the order is stable.
const SORT_KEYS = {
  name: (wf) => wf.name,
  status: (wf) => wf.status,
  last: (wf) => (wf.running_run_id ? "~" : "") + (wf.updated_at || ""),
  next: (wf) => wf.next_check_at || "~",
};

function visible(workflows) {
  const key = SORT_KEYS[view.sort] || SORT_KEYS.name;
  const sign = view.dir === "desc" ? -1 : 1;
  return workflows
    .filter((wf) => (!view.status || wf.status === view.status) && matches(wf, view.q))
    .sort((a, b) => {
      const ka = key(a), kb = key(b);
      if (ka !== kb) return ka < kb ? -sign : sign;
      return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
    });
}

// Counts by status; a click filters the list to that status (a second click clears it).
function renderSummary(workflows) {
  const counts = new Map();
  for (const wf of workflows) counts.set(wf.status, (counts.get(wf.status) || 0) + 1);
  const all = el("button", { type: "button", class: view.status ? "" : "active", "data-status": "",
    onclick: () => setView({ status: "" }) }, `all ${workflows.length}`);
  const parts = [...counts.keys()].sort((a, b) => STATUSES.indexOf(a) - STATUSES.indexOf(b)).map((status) =>
    el("button", { type: "button", class: `${status}${view.status === status ? " active" : ""}`,
      "data-status": status, "aria-pressed": String(view.status === status),
      onclick: () => setView({ status: view.status === status ? "" : status }) },
    `${status} ${counts.get(status)}`));
  $("#summary").replaceChildren(all, ...parts);
  const select = $("#status-filter");
  const options = ["", ...STATUSES, ...[...counts.keys()].filter((s) => !STATUSES.includes(s))];
  if (select.options.length !== options.length) {
    select.replaceChildren(...options.map((s) => el("option", { value: s }, s || "any")));
  }
  select.value = view.status;
}

function renderSortHeaders() {
  for (const th of document.querySelectorAll("#workflows th[data-sort]")) {
    const on = th.dataset.sort === view.sort;
    th.setAttribute("aria-sort", on ? (view.dir === "desc" ? "descending" : "ascending") : "none");
  }
}

function renderList(data) {
  state.list = data;
  $("#revision").textContent = data.revision ? `revision ${short(data.revision)}` : "no revision yet";
  renderSummary(data.workflows);
  renderSortHeaders();
  const shown = visible(data.workflows);
  $("#shown").textContent = shown.length === data.workflows.length
    ? `${shown.length} workflows` : `${shown.length} of ${data.workflows.length} workflows`;
  const body = $("#workflows tbody");
  const focused = document.activeElement && document.activeElement.closest
    ? document.activeElement.closest("#workflows tbody tr") : null;
  const refocus = focused ? focused.dataset.workflow : null;
  body.replaceChildren();
  $("#empty").hidden = data.workflows.length > 0;
  for (const wf of shown) {
    const button = el("button", { onclick: (e) => { e.stopPropagation(); select(wf.name); sync(wf.name, button); } }, "sync");
    const row = el("tr", { class: "clickable", tabindex: "0", "data-workflow": wf.name, onclick: () => select(wf.name),
      onkeydown: (e) => rowKey(e, wf.name) },
      el("td", {}, wf.name),
      el("td", { class: "status" }, badge(wf.status)),
      el("td", { class: "sync" }, badge(wf.sync)),
      el("td", {}, el("code", {}, short(wf.revision))),
      el("td", {}, wf.running_run_id ? `running ${short(wf.running_run_id)}` : short(wf.last_run_id)),
      el("td", { title: wf.message }, wf.reason),
      el("td", {}, when(wf.next_check_at)),
      el("td", { class: "window", title: wf.window ? wf.window.message : "" }, windowText(wf.window)),
      el("td", {}, button));
    if (wf.name === state.selected) {
      row.classList.add("selected");
      row.setAttribute("aria-selected", "true");
    }
    body.append(row);
    if (wf.name === refocus) row.focus({ preventScroll: true });
  }
}

// Keyboard on a row: Enter or Space opens its detail, the arrows move to the next row.
function rowKey(event, name) {
  if (event.target !== event.currentTarget) return;
  if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    select(name);
  } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    const next = event.key === "ArrowDown" ? event.currentTarget.nextElementSibling : event.currentTarget.previousElementSibling;
    if (next) next.focus();
  }
}

// Change what the list shows, write it to the hash and redraw from the last answer.
function setView(changes) {
  Object.assign(view, changes);
  writeHash();
  if (state.list) renderList(state.list);
  $("#filter").value = view.q;
}

function writeHash() {
  const params = new URLSearchParams();
  if (state.selected) params.set("wf", state.selected);
  if (view.q) params.set("q", view.q);
  if (view.status) params.set("status", view.status);
  if (view.sort !== "name") params.set("sort", view.sort);
  if (view.dir !== "asc") params.set("dir", view.dir);
  const hash = params.toString();
  history.replaceState(null, "", hash ? `#${hash}` : location.pathname + location.search);
}

// The hash of a link: the view's parameters, or (older links) just a workflow's name.
function readHash() {
  const raw = location.hash.slice(1);
  if (!raw) return;
  if (!raw.includes("=")) {
    state.selected = decodeURIComponent(raw);
    return;
  }
  const params = new URLSearchParams(raw);
  state.selected = params.get("wf") || null;
  view.q = params.get("q") || "";
  view.status = params.get("status") || "";
  view.sort = SORT_KEYS[params.get("sort")] ? params.get("sort") : "name";
  view.dir = params.get("dir") === "desc" ? "desc" : "asc";
}

// A layered layout: each state sits in the column of its distance from `start`.
function drawDiagram(diagram) {
  const level = new Map([[diagram.start, 0]]);
  const queue = [diagram.start];
  while (queue.length) {
    const name = queue.shift();
    for (const edge of diagram.edges) {
      if (edge.source === name && !level.has(edge.target)) {
        level.set(edge.target, level.get(name) + 1);
        queue.push(edge.target);
      }
    }
  }
  let spare = Math.max(0, ...level.values()) + 1;
  for (const node of diagram.nodes) if (!level.has(node.name)) level.set(node.name, spare++);
  const rows = new Map();
  const pos = new Map();
  const W = 150, H = 36, DX = 210, DY = 70, PAD = 20;
  for (const node of diagram.nodes) {
    const col = level.get(node.name);
    const row = rows.get(col) || 0;
    rows.set(col, row + 1);
    pos.set(node.name, { x: PAD + col * DX, y: PAD + row * DY });
  }
  const width = PAD * 2 + (Math.max(...level.values()) + 1) * DX;
  const height = PAD * 2 + Math.max(1, ...rows.values()) * DY;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
  const defs = svg("defs");
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
  marker.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#8c959f" }));
  defs.append(marker);
  root.append(defs);
  for (const edge of diagram.edges) {
    const a = pos.get(edge.source), b = pos.get(edge.target);
    if (!a || !b) continue;
    let d, lx, ly;
    if (edge.source === edge.target) {
      d = `M ${a.x + W - 20} ${a.y} C ${a.x + W + 20} ${a.y - 40}, ${a.x + W + 40} ${a.y + H / 2}, ${a.x + W} ${a.y + H / 2}`;
      lx = a.x + W + 10; ly = a.y - 14;
    } else if (b.x > a.x) {
      const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
      d = `M ${x1} ${y1} C ${x1 + 40} ${y1}, ${x2 - 40} ${y2}, ${x2} ${y2}`;
      lx = (x1 + x2) / 2; ly = (y1 + y2) / 2 - 4;
    } else {
      const x1 = a.x + W / 2, y1 = a.y + H, x2 = b.x + W / 2, y2 = b.y + H;
      const dip = Math.max(y1, y2) + 30;
      d = `M ${x1} ${y1} C ${x1} ${dip}, ${x2} ${dip}, ${x2} ${y2}`;
      lx = (x1 + x2) / 2; ly = dip - 6;
    }
    const classes = ["edge", edge.kind];
    if (edge.on_path) classes.push("on-path");
    root.append(svg("path", { d, class: classes.join(" "), "marker-end": "url(#arrow)" }));
    const label = svg("text", { x: lx, y: ly, class: "label", "text-anchor": "middle" });
    label.textContent = edge.label.length > 30 ? `${edge.label.slice(0, 29)}…` : edge.label;
    root.append(label);
  }
  for (const node of diagram.nodes) {
    const p = pos.get(node.name);
    const classes = ["node", node.kind];
    if (node.visited) classes.push("visited");
    if (node.current) classes.push("current");
    const group = svg("g", { class: classes.join(" "), "data-state": node.name });
    group.append(svg("rect", { x: p.x, y: p.y, width: W, height: H, rx: node.kind === "state" ? 6 : 18 }));
    const text = svg("text", { x: p.x + W / 2, y: p.y + H / 2 + 4, "text-anchor": "middle" });
    text.textContent = node.name === diagram.start ? `▶ ${node.name}` : node.name;
    const title = svg("title");
    title.textContent = node.detail || node.kind;
    group.append(title, text);
    root.append(group);
  }
  $("#diagram").replaceChildren(root);
}

// Graphviz's drawing of the diagram (served as SVG by the daemon), parsed as XML and kept only
// as shapes and text: no script, no foreign content, no event handler, no link. The states get
// `data-state` and the `visited`/`current` classes of the page's own drawing. Null when the
// daemon cannot draw it (no Graphviz): the page then draws the diagram itself.
function graphvizSvg(text, diagram) {
  const doc = new DOMParser().parseFromString(text, "image/svg+xml");
  const root = doc.documentElement;
  if (!root || root.nodeName !== "svg" || doc.querySelector("parsererror")) return null;
  for (const bad of root.querySelectorAll("script, foreignObject, a, use, image, style, iframe")) {
    bad.replaceWith(...(bad.nodeName === "a" ? bad.childNodes : []));
  }
  for (const node of [root, ...root.querySelectorAll("*")]) {
    for (const attr of [...node.attributes]) {
      const name = attr.name.toLowerCase();
      if (name.startsWith("on") || name.endsWith("href") || name === "style") node.removeAttribute(attr.name);
    }
  }
  const byName = new Map(diagram.nodes.map((n) => [n.name, n]));
  for (const group of root.querySelectorAll("g.node")) {
    const title = group.querySelector("title");
    const node = title ? byName.get(title.textContent) : null;
    if (!node) continue;
    group.setAttribute("data-state", node.name);
    if (node.visited) group.classList.add("visited");
    if (node.current) group.classList.add("current");
  }
  root.setAttribute("role", "img");
  root.classList.add("graphviz");
  return document.importNode(root, true);
}

async function showDiagram(name, query) {
  const diagram = await api(`/api/v1/workflows/${name}/graph?format=json${query}`);
  let drawn = null;
  if (!state.noGraphviz) {
    const response = await get(`/api/v1/workflows/${name}/graph?format=svg${query}`);
    if (response.status === 503) state.noGraphviz = true;
    if (response.ok) drawn = graphvizSvg(await response.text(), diagram);
  }
  return { diagram, drawn };
}

function renderDetail(wf, runs) {
  $("#detail").hidden = false;
  $("#detail-name").replaceChildren(wf.name, " ", badge(wf.status), " ", badge(wf.sync));
  $("#detail-message").textContent = [wf.reason, wf.message].filter(Boolean).join(": ");
  $("#detail-window").hidden = !wf.window;
  $("#detail-window").textContent = wf.window ? `change window: ${wf.window.message}` : "";
  const diffs = Array.isArray(wf.diff) ? wf.diff : [];
  $("#diff-box").hidden = diffs.length === 0;
  $("#diff tbody").replaceChildren(...diffs.map((d) => el("tr", {},
    el("td", {}, el("code", {}, d.path)),
    el("td", {}, el("code", {}, JSON.stringify(d.desired))),
    el("td", {}, el("code", {}, d.missing ? "(missing)" : JSON.stringify(d.observed))))));
  const problems = wf.problems || [];
  $("#problems-box").hidden = problems.length === 0;
  $("#problems").replaceChildren(...problems.map((p) => el("li", {}, `${p.path}:${p.line}:${p.column}: ${p.message}`)));
  $("#runs tbody").replaceChildren(...runs.runs.map((r) => {
    const row = el("tr", { class: "clickable", "data-run": r.id, onclick: () => { state.run = r.id; refresh(); } },
      el("td", {}, el("code", {}, short(r.id))),
      el("td", {}, badge(r.status)),
      el("td", {}, whyRun(r)),
      el("td", {}, r.current_state || ""),
      el("td", {}, when(r.started_at)),
      el("td", {}, el("code", {}, short(r.revision))),
      el("td", {}, r.error || ""));
    if (r.id === state.run) row.classList.add("selected");
    return row;
  }));
}

// The reason a run ran, with who asked for it, the inputs it was started with, who decided its
// approval and who cancelled it (API token names).
function whyRun(r) {
  const parts = [r.reason];
  if (r.requested_by) parts.push(`requested by ${r.requested_by}`);
  const inputs = Object.entries(r.inputs || {}).sort(([a], [b]) => (a < b ? -1 : 1));
  if (inputs.length) parts.push(`inputs ${inputs.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ")}`);
  for (const e of r.journal || []) {
    if (e.kind === "approval_decided") parts.push(`${e.outcome} by ${e.detail.by}`);
  }
  if (r.cancelled_by) parts.push(`cancelled by ${r.cancelled_by}`);
  return parts.filter(Boolean).join(", ");
}

function renderJournal(run) {
  $("#journal-box").hidden = false;
  $("#journal-title").textContent = `Journal of run ${short(run.id)} (${run.status}; ${whyRun(run)})`;
  $("#journal tbody").replaceChildren(...run.journal.map((e) => {
    const where = e.to_state ? `${e.state} → ${e.to_state}` : (e.state || "");
    const { outputs, ...rest } = e.detail || {};
    return el("tr", {},
      el("td", {}, String(e.seq)),
      el("td", {}, new Date(e.at).toLocaleTimeString()),
      el("td", {}, e.kind),
      el("td", {}, where),
      el("td", {}, e.outcome || ""),
      el("td", {}, el("code", {}, JSON.stringify(rest))));
  }));
}

function renderReadiness(ok, body) {
  const badgeEl = $("#ready");
  badgeEl.textContent = ok ? "ready" : "not ready";
  badgeEl.className = `badge ${ok ? "ready" : "notready"}`;
  badgeEl.title = (body && body.reason) || "";
  const source = body && body.source;
  const banner = $("#source-banner");
  banner.hidden = !(source && source.error);
  if (banner.hidden) return;
  const since = source.last_success_at
    ? `last successful fetch ${when(source.last_success_at)}`
    : "no successful fetch since the daemon started";
  const revision = body.revision ? `; working from revision ${short(body.revision)}` : "";
  const what = source.signature_refused
    ? "The head commit of the repository is not signed by an allowed key and is not applied"
    : "The repository cannot be fetched";
  banner.replaceChildren(`${what} (${since}${revision}): `, el("code", {}, source.error));
}

// The rows stay, dimmed, with a banner saying since when they are what the page last saw.
function renderFailure(err) {
  const asOf = state.asOf ? state.asOf.toLocaleString() : "never";
  const banner = $("#unreachable");
  banner.textContent = err instanceof Unreachable
    ? `daemon unreachable, data as of ${asOf}`
    : `refresh failed (${err.message}), data as of ${asOf}`;
  banner.hidden = false;
  $("main").classList.add("stale");
  if (err instanceof Unreachable) {
    const badgeEl = $("#ready");
    badgeEl.textContent = "unreachable";
    badgeEl.className = "badge notready";
  }
}

function renderFresh() {
  state.asOf = new Date();
  $("#unreachable").hidden = true;
  $("main").classList.remove("stale");
}

// Refreshes overlap (the timer, a click, a sync); only the newest may draw, so a slow answer
// to an older request never paints stale state over newer state.
async function refresh() {
  const mine = ++state.generation;
  const current = () => mine === state.generation;
  let listed = false;
  try {
    const ready = await get("/readyz");
    let readiness = null;
    try { readiness = await ready.json(); } catch (_) { readiness = null; }
    if (!current()) return;
    renderReadiness(ready.ok, readiness);
    const [list, approvals] = await Promise.all([cachedApi("/api/v1/workflows"), api("/api/v1/approvals")]);
    if (!current()) return;
    renderApprovals(approvals);
    if (list !== state.list) renderList(list); // the same object: a 304, nothing to redraw
    renderFresh();
    listed = true;
    if (state.selected) {
      const name = encodeURIComponent(state.selected);
      const [wf, runs] = await Promise.all([
        cachedApi(`/api/v1/workflows/${name}`),
        api(`/api/v1/runs?workflow=${name}&limit=20`),
      ]);
      if (!current()) return;
      renderDetail(wf, runs);
      if (state.reveal) {
        state.reveal = false;
        // Beside the list (wide screens) the detail is always in view; below it, go there.
        if (!matchMedia("(min-width: 1100px)").matches) $("#detail").scrollIntoView({ block: "start" });
      }
      const running = runs.runs.find((r) => r.status === "running");
      const shown = state.run ? runs.runs.find((r) => r.id === state.run) : running || runs.runs[0];
      const diagramRun = running || shown;
      const query = diagramRun ? `&run=${encodeURIComponent(diagramRun.id)}` : "";
      const { diagram, drawn } = await showDiagram(name, query);
      if (!current()) return;
      if (drawn) $("#diagram").replaceChildren(drawn);
      else drawDiagram(diagram);
      const journal = shown ? await api(`/api/v1/runs/${encodeURIComponent(shown.id)}`) : null;
      if (!current()) return;
      if (journal) renderJournal(journal);
      else $("#journal-box").hidden = true;
    }
  } catch (err) {
    if (!current()) return;
    // The list is what the page is about: a detail that fails to load is only a notice.
    if (err instanceof Unreachable || !listed) renderFailure(err);
    else $("#notice").textContent = err.message;
  }
}

function select(name) {
  if (state.selected !== name) state.run = null;
  state.selected = name;
  state.reveal = true;
  writeHash();
  if (state.list) renderList(state.list);
  refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  const input = $("#token");
  input.value = token();
  input.addEventListener("change", () => {
    sessionStorage.setItem("reconciler-token", input.value);
    refresh();
  });
  readHash();
  const filter = $("#filter");
  filter.value = view.q;
  filter.addEventListener("input", () => setView({ q: filter.value }));
  $("#status-filter").addEventListener("change", (e) => setView({ status: e.target.value }));
  for (const th of document.querySelectorAll("#workflows th[data-sort]")) {
    th.querySelector("button").addEventListener("click", () => {
      const key = th.dataset.sort;
      setView({ sort: key, dir: view.sort === key && view.dir === "asc" ? "desc" : "asc" });
    });
  }
  refresh();
  state.timer = setInterval(refresh, REFRESH_MS);
});
