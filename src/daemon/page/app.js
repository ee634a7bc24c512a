// swarm's web page: a client of the same qBittorrent-compatible API the tools use.
// The list follows sync/maindata (incremental, by rid) once a second; every action is
// one API call. No framework, no build step, nothing fetched from elsewhere.
"use strict";

const API = "/api/v2/";
const $ = (sel) => document.querySelector(sel);

let rid = 0;
let torrents = {};          // hash -> merged torrent object
let server = {};
let selected = null;        // hash shown in the detail pane
let stalls = {};            // hash -> why it is stalled (swarm/stalled)
let timer = null;

async function call(path, { method = "GET", form = null, params = null } = {}) {
  let url = API + path;
  if (params) url += "?" + new URLSearchParams(params);
  const opts = { method, credentials: "same-origin" };
  if (form) opts.body = form;
  const r = await fetch(url, opts);
  if (r.status === 403) { showLogin(); throw new Error("not logged in"); }
  if (!r.ok) throw new Error((await r.text()) || r.statusText);
  const type = r.headers.get("content-type") || "";
  return type.includes("json") ? r.json() : r.text();
}

function post(path, fields) {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) f.append(k, v);
  return call(path, { method: "POST", form: f });
}

// ---- formatting ----

function bytes(n) {
  if (!(n > 0)) return "0 B";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(2) : n) + " " + u[i];
}
const rate = (n) => (n > 0 ? bytes(n) + "/s" : "");
function eta(s) {
  if (!(s >= 0) || s >= 8640000) return "∞";
  if (s === 0) return "";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h}h${String(m).padStart(2, "0")}m` : `${m}m${String(s % 60).padStart(2, "0")}s`;
}
const STATES = {
  downloading: "downloading", stalledDL: "stalled", metaDL: "metadata",
  uploading: "seeding", stalledUP: "seeding", pausedDL: "stopped", pausedUP: "stopped (done)",
  stoppedDL: "stopped", stoppedUP: "stopped (done)", checkingDL: "checking",
  checkingUP: "checking", checkingResumeData: "checking", queuedDL: "queued",
  queuedUP: "queued", forcedDL: "downloading", forcedUP: "seeding", error: "error",
  missingFiles: "missing files", moving: "moving",
};
const stopped = (t) => /^(paused|stopped)/.test(t.state);

// ---- login ----

function showLogin() {
  clearTimeout(timer);
  $("#app").hidden = true;
  $("#logout").hidden = true;
  $("#login").hidden = false;
}

$("#login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const r = await fetch(API + "auth/login", { method: "POST", body: new URLSearchParams(f) });
  const text = await r.text();
  if (r.ok && text.trim() === "Ok.") {
    $("#login-error").textContent = "";
    start();
  } else {
    $("#login-error").textContent = r.status === 403 ? "Too many attempts: wait, then try again." : "Wrong user or password.";
  }
});

$("#logout").addEventListener("click", async () => {
  await call("auth/logout", { method: "POST" }).catch(() => {});
  showLogin();
});

// ---- the list ----

async function poll() {
  try {
    const [d, st] = await Promise.all([
      call("sync/maindata", { params: { rid } }),
      call("swarm/stalled").catch(() => ({})),
    ]);
    stalls = st || {};
    rid = d.rid;
    if (d.full_update) torrents = {};
    for (const [h, t] of Object.entries(d.torrents || {})) torrents[h] = Object.assign(torrents[h] || { hash: h }, t);
    for (const h of d.torrents_removed || []) delete torrents[h];
    if (d.server_state) Object.assign(server, d.server_state);
    render();
    if (selected) await detail(false);
  } catch (e) {
    if (e.message === "not logged in") return;
  }
  timer = setTimeout(poll, 1000);
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function render() {
  const list = Object.values(torrents).sort((a, b) => (a.added_on - b.added_on) || a.name.localeCompare(b.name));
  $("#empty").hidden = list.length > 0;
  $("#torrents").hidden = list.length === 0;
  const body = $("#torrents tbody");
  body.replaceChildren();
  for (const t of list) {
    const tr = document.createElement("tr");
    tr.className = "row";
    tr.dataset.hash = t.hash;
    cell(tr, t.name, "name");
    cell(tr, bytes(t.size));
    const p = cell(tr, "");
    const bar = document.createElement("progress");
    bar.max = 1; bar.value = t.progress || 0;
    p.append(bar, " " + ((t.progress || 0) * 100).toFixed(1) + "%");
    const state = cell(tr, STATES[t.state] || t.state);
    if (stalls[t.hash]) {
      // The doctor's cause as a tooltip; text only, never markup.
      const mark = document.createElement("span");
      mark.className = "stalled";
      mark.textContent = "stalled";
      mark.title = stalls[t.hash];
      state.append(" ", mark);
    }
    cell(tr, rate(t.dlspeed));
    cell(tr, rate(t.upspeed));
    cell(tr, `${t.num_seeds + t.num_leechs}`);
    cell(tr, (t.ratio || 0).toFixed(2));
    cell(tr, t.progress >= 1 ? "" : eta(t.eta));
    const act = cell(tr, "");
    const b = document.createElement("button");
    b.className = "plain";
    b.textContent = stopped(t) ? "Start" : "Stop";
    b.addEventListener("click", (ev) => { ev.stopPropagation(); toggle(t.hash); });
    act.appendChild(b);
    tr.addEventListener("click", () => { selected = t.hash; detail(true); });
    body.appendChild(tr);
  }
  $("#totals").textContent = `↓ ${rate(server.dl_info_speed) || "0 B/s"}  ↑ ${rate(server.up_info_speed) || "0 B/s"}`;
}

async function toggle(hash) {
  const t = torrents[hash];
  if (!t) return;
  await post(stopped(t) ? "torrents/start" : "torrents/stop", { hashes: hash }).catch(alertError);
}

function alertError(e) { $("#add-error").textContent = e.message; }

// ---- one torrent ----

async function detail(fresh) {
  const t = torrents[selected];
  if (!t) { $("#detail").hidden = true; selected = null; return; }
  $("#detail").hidden = false;
  $("#detail-name").textContent = t.name;
  $("#toggle").textContent = stopped(t) ? "Start" : "Stop";
  $("#peers").textContent = `${t.num_seeds} seeds and ${t.num_leechs} leechers connected`;
  const [files, trackers, peers, diag] = await Promise.all([
    call("torrents/files", { params: { hash: selected } }),
    call("torrents/trackers", { params: { hash: selected } }),
    call("sync/torrentPeers", { params: { hash: selected, rid: 0 } }),
    call("swarm/diagnosis", { params: { hash: selected } }).catch(() => null),
  ]);
  showDiagnosis(diag);
  const pb = $("#peer-list tbody");
  pb.replaceChildren();
  const list = Object.entries(peers.peers || {});
  $("#peer-list").hidden = list.length === 0;
  for (const [addr, p] of list) {
    const row = document.createElement("tr");
    cell(row, addr, "name");
    cell(row, p.client || "");
    cell(row, ((p.progress || 0) * 100).toFixed(1) + "%");
    cell(row, rate(p.dl_speed));
    cell(row, rate(p.up_speed));
    cell(row, p.flags || "").title = p.flags_desc || "";
    pb.appendChild(row);
  }
  const fb = $("#files tbody");
  // Redrawn only when asked or when nothing has focus in it, so a click is not lost.
  if (fresh || !fb.contains(document.activeElement)) {
    fb.replaceChildren();
    for (const f of files) {
      const tr = document.createElement("tr");
      const get = cell(tr, "");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = f.priority > 0;
      box.setAttribute("aria-label", "download " + f.name);
      box.addEventListener("change", () => setPrio(f.index, box.checked ? 1 : 0));
      get.appendChild(box);
      cell(tr, f.name, "name");
      cell(tr, bytes(f.size));
      cell(tr, ((f.progress || 0) * 100).toFixed(1) + "%");
      const pc = cell(tr, "");
      const sel = document.createElement("select");
      for (const [v, label] of [[0, "skip"], [1, "normal"], [6, "high"]]) {
        const o = document.createElement("option");
        o.value = v; o.textContent = label; o.selected = (f.priority >= 6 ? 6 : f.priority) === v;
        sel.appendChild(o);
      }
      sel.addEventListener("change", () => setPrio(f.index, Number(sel.value)));
      pc.appendChild(sel);
      fb.appendChild(tr);
    }
  }
  const tb = $("#trackers tbody");
  tb.replaceChildren();
  const words = { 0: "disabled", 1: "not contacted", 2: "working", 3: "updating", 4: "not working" };
  for (const tr of trackers) {
    const row = document.createElement("tr");
    cell(row, tr.url, "name");
    cell(row, words[tr.status] || String(tr.status));
    cell(row, tr.num_peers >= 0 ? String(tr.num_peers) : "");
    cell(row, tr.msg || "");
    tb.appendChild(row);
  }
}

// The doctor's words for the selected torrent: its cause, then one line per finding.
// Text content only: tracker errors and host names in it come from outside.
function showDiagnosis(d) {
  const cause = $("#cause"), list = $("#findings");
  list.replaceChildren();
  if (!d) { cause.textContent = ""; return; }
  cause.textContent = (d.stalled ? "Stalled: " : "") + d.cause;
  cause.className = d.stalled ? "stalled" : "";
  for (const f of d.findings || []) {
    const li = document.createElement("li");
    const sev = document.createElement("span");
    sev.className = "sev " + (["ok", "warn", "fail"].includes(f.severity) ? f.severity : "");
    sev.textContent = f.severity;
    li.append(sev, ` ${f.topic}: ${f.text}`);
    list.appendChild(li);
  }
}

function setPrio(index, priority) {
  post("torrents/filePrio", { hash: selected, id: String(index), priority: String(priority) }).catch(alertError);
}

$("#toggle").addEventListener("click", () => selected && toggle(selected));
$("#close").addEventListener("click", () => { selected = null; $("#detail").hidden = true; });
for (const [id, data] of [["#remove", "false"], ["#remove-data", "true"]]) {
  $(id).addEventListener("click", async () => {
    const t = torrents[selected];
    if (!t) return;
    const what = data === "true" ? "Remove “" + t.name + "” and delete its files?" : "Remove “" + t.name + "”? Its files stay.";
    if (!confirm(what)) return;
    await post("torrents/delete", { hashes: selected, deleteFiles: data }).catch(alertError);
    selected = null;
    $("#detail").hidden = true;
  });
}

// ---- adding ----

$("#add").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = ev.target;
  const f = new FormData();
  const urls = form.urls.value.trim();
  if (urls) f.append("urls", urls);
  for (const file of form.torrents.files) f.append("torrents", file, file.name);
  if (!urls && !form.torrents.files.length) { $("#add-error").textContent = "Give a magnet link or a .torrent file."; return; }
  if (form.stopped.checked) { f.append("stopped", "true"); f.append("paused", "true"); }
  try {
    const r = await call("torrents/add", { method: "POST", form: f });
    if (String(r).trim() !== "Ok.") throw new Error("not added: " + r);
    $("#add-error").textContent = "";
    form.reset();
  } catch (e) {
    $("#add-error").textContent = e.message;
  }
});

// ---- start ----

async function start() {
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#logout").hidden = false;
  rid = 0;
  poll();
}

// Logged in already (a cookie from before)? Ask something small.
fetch(API + "app/version", { credentials: "same-origin" }).then((r) => (r.ok ? start() : showLogin()), showLogin);
