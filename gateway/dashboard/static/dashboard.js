/* Stepgate cost dashboard: reads /v1/spend/* (rollups, backend health) and /dashboard/api/*
 * (indexed raw reads) and draws them with Chart.js. State lives in the URL query string so a
 * view can be shared.
 * window.stepgateDashboard exposes the loaded data, the charts and the CSV for tests. */
(function () {
  "use strict";

  const RANGES = ["24h", "7d", "30d", "custom"];
  const FILTERS = ["team", "route", "kind", "backend"];
  const PAGE_SIZE = 25;
  const PALETTE = ["#2563eb", "#16a34a", "#f59e0b", "#db2777", "#7c3aed", "#0891b2", "#dc2626",
    "#65a30d", "#ea580c", "#475569"];
  const $ = (sel) => document.querySelector(sel);

  const state = {
    range: "7d", since: "", until: "", team: "", route: "", kind: "", backend: "",
    escalatedOnly: false, cursors: [null], page: 0,
  };
  const data = { meta: null, totals: null, recent: null, health: null };
  const charts = {};
  let loads = 0;
  let generation = 0;

  // ---- formatting -----------------------------------------------------------------------
  const nf = new Intl.NumberFormat("en-US");
  function usd(nanos) {
    if (nanos === null || nanos === undefined) return "unknown";
    const v = nanos / 1e9;
    const a = Math.abs(v);
    if (a === 0) return "$0.00";
    if (a >= 1000) return (v < 0 ? "-$" : "$") + nf.format(Math.round(a));
    if (a >= 1) return (v < 0 ? "-$" : "$") + a.toFixed(2);
    if (a >= 0.01) return (v < 0 ? "-$" : "$") + a.toFixed(4);
    return (v < 0 ? "-$" : "$") + Number(a.toPrecision(3)).toString();
  }
  const pct = (x) => (x === null || x === undefined || !isFinite(x) ? "–" : (x * 100).toFixed(1) + "%");
  const ms = (x) => (x === null || x === undefined ? "–" : x >= 1000 ? (x / 1000).toFixed(2) + " s" : Math.round(x) + " ms");
  const dollars = (nanos) => (nanos || 0) / 1e9;
  function esc(text) {
    return String(text === null || text === undefined ? "" : text)
      .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }
  const shortId = (id) => (id.length > 14 ? id.slice(0, 6) + "…" + id.slice(-6) : id);
  const two = (n) => String(n).padStart(2, "0");
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  function label(iso, bucket) {
    const d = new Date(iso);
    const day = MONTHS[d.getUTCMonth()] + " " + d.getUTCDate();
    return bucket === "day" ? day : day + " " + two(d.getUTCHours()) + ":" + two(d.getUTCMinutes());
  }
  function stamp(iso) {
    const d = new Date(iso);
    return d.getUTCFullYear() + "-" + two(d.getUTCMonth() + 1) + "-" + two(d.getUTCDate()) + " " +
      two(d.getUTCHours()) + ":" + two(d.getUTCMinutes()) + ":" + two(d.getUTCSeconds());
  }

  // ---- state <-> URL ----------------------------------------------------------------------
  function readUrl() {
    const q = new URLSearchParams(location.search);
    const r = q.get("range");
    if (q.get("since")) { state.range = "custom"; state.since = q.get("since"); state.until = q.get("until") || ""; }
    else if (r && RANGES.includes(r)) state.range = r;
    for (const f of FILTERS) state[f] = q.get(f) || "";
    state.escalatedOnly = q.get("escalated") === "true";
  }
  function writeUrl() {
    const q = new URLSearchParams();
    if (state.range === "custom") { q.set("since", state.since); if (state.until) q.set("until", state.until); }
    else q.set("range", state.range);
    for (const f of FILTERS) if (state[f]) q.set(f, state[f]);
    if (state.escalatedOnly) q.set("escalated", "true");
    history.replaceState(null, "", location.pathname + "?" + q.toString());
  }
  function windowParams() {
    const q = new URLSearchParams();
    if (state.range === "custom") { q.set("since", state.since); if (state.until) q.set("until", state.until); }
    else q.set("range", state.range);
    for (const f of FILTERS) if (state[f]) q.set(f, state[f]);
    return q;
  }
  function spanSeconds() {
    if (state.range === "24h") return 86400;
    if (state.range === "7d") return 7 * 86400;
    if (state.range === "30d") return 30 * 86400;
    const since = Date.parse(state.since + (/[zZ]|[+-]\d\d:?\d\d$/.test(state.since) ? "" : "Z"));
    const untilText = state.until;
    const until = untilText ? Date.parse(untilText + (/[zZ]|[+-]\d\d:?\d\d$/.test(untilText) ? "" : "Z")) : Date.now();
    return Math.max(60, (until - since) / 1000);
  }
  function bucketFor() {
    const span = spanSeconds();
    if (span <= 6 * 3600) return "minute";
    if (span <= 8 * 86400) return "hour";
    return "day";
  }

  // ---- fetching ------------------------------------------------------------------------------
  class HttpError extends Error {}
  async function getJson(path, params) {
    const url = path + (params ? "?" + params.toString() : "");
    const res = await fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } });
    if (res.status === 401 || res.status === 403) { location.href = "/dashboard/login"; throw new HttpError("signed out"); }
    if (!res.ok) {
      let msg = res.status + " " + res.statusText;
      try { msg = (await res.json()).error.message; } catch (e) { /* not JSON */ }
      throw new HttpError(msg);
    }
    return res.json();
  }
  function withParams(extra) {
    const q = windowParams();
    for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
    return q;
  }
  function escalationParams() {
    const q = windowParams();
    q.delete("backend"); // escalation rollups have no backend dimension
    return q;
  }
  function recentParams() {
    const q = withParams({ limit: String(PAGE_SIZE) });
    const cursor = state.cursors[state.page];
    if (cursor) q.set("cursor", cursor);
    if (state.escalatedOnly) q.set("escalated", "true");
    return q;
  }

  // ---- charts ------------------------------------------------------------------------------
  function baseOptions(extra) {
    return Object.assign({
      responsive: true, maintainAspectRatio: false, animation: false,
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12, usePointStyle: true } } },
    }, extra || {});
  }
  const usdAxis = { beginAtZero: true, ticks: { callback: (v) => usd(v * 1e9) }, grid: { color: "#eef2f7" } };
  const usdTooltip = { callbacks: { label: (c) => c.dataset.label + ": " + usd(c.parsed.y * 1e9) } };

  function draw(id, config, emptyText) {
    const canvas = document.getElementById(id);
    const empty = canvas.parentElement.querySelector(".chart-empty");
    if (charts[id]) { charts[id].destroy(); delete charts[id]; }
    const hasPoints = config && config.data.datasets.some((d) => d.data.some((v) => v !== null && v !== 0));
    if (!hasPoints) {
      canvas.hidden = true; empty.hidden = false; empty.textContent = emptyText;
      return;
    }
    canvas.hidden = false; empty.hidden = true;
    charts[id] = new Chart(canvas, config);
  }

  function drawRouteSpend(series, byRoute, bucket) {
    const labels = series.points.map((p) => label(p.t, bucket));
    const index = new Map(series.points.map((p, i) => [p.t, i]));
    const routes = [...new Set(byRoute.points.map((p) => p.key))].sort();
    const datasets = routes.map((route, i) => {
      const values = new Array(labels.length).fill(0);
      for (const p of byRoute.points) if (p.key === route && index.has(p.t)) values[index.get(p.t)] += dollars(p.cost_nanos);
      return { label: route, data: values, backgroundColor: PALETTE[i % PALETTE.length], stack: "spend", borderRadius: 2 };
    });
    draw("chart-route-spend", {
      type: "bar", data: { labels, datasets },
      options: baseOptions({ scales: { x: { stacked: true, grid: { display: false }, ticks: { maxTicksLimit: 12 } }, y: Object.assign({ stacked: true }, usdAxis) }, plugins: { legend: { position: "bottom" }, tooltip: usdTooltip } }),
    }, "No spend in this range.");
    return { labels, datasets };
  }

  function drawSavings(series, bucket) {
    const labels = series.points.map((p) => label(p.t, bucket));
    const datasets = [
      { label: "Savings", data: series.points.map((p) => dollars(p.savings_nanos)), borderColor: "#16a34a", backgroundColor: "rgba(22,163,74,0.15)", fill: true, tension: 0.25, pointRadius: 0 },
      { label: "Baseline", data: series.points.map((p) => dollars(p.baseline_cost_nanos)), borderColor: "#94a3b8", borderDash: [4, 4], pointRadius: 0, tension: 0.25 },
      { label: "Spend", data: series.points.map((p) => dollars(p.cost_nanos)), borderColor: "#2563eb", pointRadius: 0, tension: 0.25 },
    ];
    draw("chart-savings", {
      type: "line", data: { labels, datasets },
      options: baseOptions({ scales: { x: { grid: { display: false }, ticks: { maxTicksLimit: 8 } }, y: usdAxis }, plugins: { legend: { position: "bottom" }, tooltip: usdTooltip } }),
    }, "No savings to show in this range.");
    return { labels, datasets };
  }

  function drawKinds(byKind) {
    const groups = byKind.groups.filter((g) => g.requests > 0 || g.cost_nanos > 0);
    const labels = groups.map((g) => g.key);
    const datasets = [
      { type: "bar", label: "Cost", data: groups.map((g) => dollars(g.cost_nanos)), backgroundColor: "#2563eb", yAxisID: "y", borderRadius: 3 },
      { type: "line", label: "Requests", data: groups.map((g) => g.requests), borderColor: "#f59e0b", backgroundColor: "#f59e0b", yAxisID: "y1", pointRadius: 4 },
    ];
    draw("chart-kind", {
      type: "bar", data: { labels, datasets },
      options: baseOptions({
        scales: { x: { grid: { display: false } }, y: usdAxis, y1: { beginAtZero: true, position: "right", grid: { display: false }, ticks: { precision: 0 } } },
        plugins: { legend: { position: "bottom" }, tooltip: { callbacks: { label: (c) => c.dataset.label + ": " + (c.dataset.yAxisID === "y" ? usd(c.parsed.y * 1e9) : nf.format(c.parsed.y)) } } },
      }),
    }, "No requests in this range.");
    return { labels, datasets };
  }

  function drawLatency(byBackend) {
    const groups = byBackend.groups.filter((g) => g.requests > 0 && g.key);
    const labels = groups.map((g) => g.key);
    const datasets = [
      { label: "p50", data: groups.map((g) => g.latency_p50_ms), backgroundColor: "#0891b2", borderRadius: 3 },
      { label: "p95", data: groups.map((g) => g.latency_p95_ms), backgroundColor: "#7c3aed", borderRadius: 3 },
    ];
    draw("chart-latency", {
      type: "bar", data: { labels, datasets },
      options: baseOptions({ scales: { x: { grid: { display: false } }, y: { beginAtZero: true, title: { display: true, text: "ms" }, grid: { color: "#eef2f7" } } },
        plugins: { legend: { position: "bottom" }, tooltip: { callbacks: { label: (c) => c.dataset.label + ": " + ms(c.parsed.y) } } } }),
    }, "No completed requests in this range.");
    return { labels, datasets };
  }

  function drawEscalations(report) {
    const groups = report.reasons || [];
    const labels = groups.map((g) => g.reason);
    const datasets = [
      { label: "Escalated", data: groups.map((g) => g.escalated), backgroundColor: "#db2777", stack: "r", borderRadius: 3 },
      { label: "Flagged as draft", data: groups.map((g) => g.drafts), backgroundColor: "#f59e0b", stack: "r", borderRadius: 3 },
    ];
    draw("chart-escalations", {
      type: "bar", data: { labels, datasets },
      options: baseOptions({ indexAxis: "y", scales: { x: { stacked: true, beginAtZero: true, ticks: { precision: 0 }, grid: { color: "#eef2f7" } }, y: { stacked: true, grid: { display: false } } }, plugins: { legend: { position: "bottom" } } }),
    }, "No failed checks in this range: every cheap answer passed.");
    $("#escalations-note").textContent = state.backend ? "· all backends (reasons are kept per route, team and kind)" : "";
    return { labels, datasets };
  }

  // ---- KPIs and tables -------------------------------------------------------------------------
  function kpi(name, value, text, sub, title) {
    const el = document.querySelector('[data-kpi="' + name + '"]');
    el.dataset.value = value === null || value === undefined ? "" : String(value);
    el.querySelector(".kpi-value").textContent = text;
    el.querySelector(".kpi-sub").textContent = sub || "";
    el.title = title || "";
  }

  function dllmShare(byBackend, meta, totals) {
    if (!totals.requests) return null;
    let served = 0;
    for (const g of byBackend.groups) if (g.key && meta.backends[g.key] === "dllm") served += g.requests;
    return served / totals.requests;
  }

  function renderKpis(t, share) {
    const savingsPct = t.baseline_cost_nanos ? t.savings_nanos / t.baseline_cost_nanos : null;
    kpi("spend", t.cost_nanos, usd(t.cost_nanos), t.unknown_cost_attempts ? t.unknown_cost_attempts + " attempts unpriced" : nf.format(t.tokens) + " tokens", "$" + t.cost_usd);
    kpi("baseline", t.baseline_cost_nanos, usd(t.baseline_cost_nanos), "if every step went to the AR baseline", "$" + t.baseline_cost_usd);
    kpi("savings", t.savings_nanos, usd(t.savings_nanos), pct(savingsPct) + " of baseline", "$" + t.savings_usd);
    const savingsKpi = document.querySelector('[data-kpi="savings"]');
    savingsKpi.dataset.pct = savingsPct === null ? "" : String(savingsPct);
    // Negative savings (routing cost more than the all-AR baseline) are shown in red.
    savingsKpi.classList.toggle("kpi-good", t.savings_nanos >= 0);
    savingsKpi.classList.toggle("kpi-bad", t.savings_nanos < 0);
    kpi("requests", t.requests, nf.format(t.requests), t.errors ? nf.format(t.errors) + " errors" : "no errors");
    kpi("dllm_share", share, pct(share), "of requests answered by a dLLM backend");
    kpi("escalation_rate", t.escalation_rate, pct(t.escalation_rate), nf.format(t.escalations) + " escalated" + (t.drafts ? ", " + nf.format(t.drafts) + " drafts" : ""));
    kpi("p95", t.latency_p95_ms, ms(t.latency_p95_ms), "p50 " + ms(t.latency_p50_ms));
  }

  function fillTable(id, rows, emptyText, columns) {
    const body = document.querySelector("#" + id + " tbody");
    if (!rows.length) {
      body.innerHTML = '<tr class="empty-row"><td colspan="' + columns + '">' + esc(emptyText) + "</td></tr>";
      return;
    }
    body.innerHTML = rows.map((cells) => "<tr>" + cells.map((c) =>
      '<td class="' + (c.cls || "") + '"' + (c.title ? ' title="' + esc(c.title) + '"' : "") + ">" + (c.html !== undefined ? c.html : esc(c.text)) + "</td>").join("") + "</tr>").join("");
  }

  function renderTeams(byTeam, totals) {
    const rows = byTeam.groups.slice(0, 10).map((g) => [
      { text: g.key || "(no team)", cls: g.key ? "" : "muted" },
      { text: nf.format(g.requests), cls: "num" },
      { text: usd(g.cost_nanos), cls: "num", title: "$" + g.cost_usd },
      { text: usd(g.baseline_cost_nanos), cls: "num" },
      { text: usd(g.savings_nanos), cls: g.savings_nanos < 0 ? "num bad" : "num good" },
      { text: pct(totals.cost_nanos ? g.cost_nanos / totals.cost_nanos : null), cls: "num" },
    ]);
    fillTable("t-teams", rows, "No spend by any team in this range.", 6);
    return byTeam.groups.slice(0, 10);
  }

  function renderKeys(keys) {
    const rows = keys.keys.map((k) => [
      { html: k.api_key_id ? "<code>" + esc(k.api_key_id) + "</code>" : '<span class="muted">(no key)</span>' },
      { text: k.team || "–", cls: k.team ? "" : "muted" },
      { text: nf.format(k.requests), cls: "num" },
      { text: usd(k.cost_nanos), cls: "num", title: "$" + k.cost_usd },
      { text: usd(k.baseline_cost_nanos), cls: "num" },
    ]);
    fillTable("t-keys", rows, "No keyed traffic in this range.", 5);
    $("#keys-note").textContent = keys.capped ? "last 7 days of the range" : "";
  }

  function renderRecent(recent, totals) {
    const rows = recent.items.map((r) => [
      { text: stamp(r.started_at), cls: "nowrap" },
      { html: "<code>" + esc(shortId(r.request_id)) + "</code>", title: r.request_id + (r.client_request_id ? " (client id " + r.client_request_id + ")" : "") },
      { text: r.team || "–", cls: r.team ? "" : "muted" },
      { text: r.route },
      { text: r.backend || "–" },
      { text: r.kind },
      { html: '<span class="pill ' + (r.status < 400 ? "pill-ok" : "pill-bad") + '">' + r.status + "</span>", cls: "num", title: r.error_class || "" },
      { text: usd(r.cost_nanos), cls: "num", title: r.cost_usd === null ? "" : "$" + r.cost_usd },
      { text: ms(r.latency_ms), cls: "num" },
      { html: r.escalated ? '<span class="pill pill-warn">' + esc(r.escalation_reason || "escalated") + "</span>" : (r.disposition === "draft" ? '<span class="pill">draft</span>' : '<span class="muted">–</span>') },
    ]);
    fillTable("t-recent", rows, state.escalatedOnly ? "No escalated requests in this range." : "No requests in this range.", 10);
    const pages = state.escalatedOnly ? null : Math.max(1, Math.ceil(totals.requests / PAGE_SIZE));
    $("#page").textContent = "Page " + (state.page + 1) + (pages ? " of " + nf.format(pages) : "") +
      (state.escalatedOnly ? "" : " · " + nf.format(totals.requests) + " requests");
    $("#prev").disabled = state.page === 0;
    $("#next").disabled = !recent.next_cursor;
  }

  // ---- filters -------------------------------------------------------------------------------
  function fillSelect(id, values, current) {
    const select = document.getElementById(id);
    const first = select.options[0];
    select.innerHTML = "";
    select.appendChild(first);
    const all = [...new Set([...values, ...(current ? [current] : [])])];
    for (const v of all) { const o = document.createElement("option"); o.value = v; o.textContent = v; select.appendChild(o); }
    select.value = current;
  }
  function syncControls() {
    document.querySelectorAll(".seg").forEach((b) => b.classList.toggle("active", b.dataset.range === state.range));
    $("#custom").hidden = state.range !== "custom";
    for (const f of FILTERS) document.getElementById("f-" + f).value = state[f];
    $("#clear-filters").hidden = !FILTERS.some((f) => state[f]);
    $("#only-escalated").checked = state.escalatedOnly;
  }

  // ---- CSV -------------------------------------------------------------------------------------
  const shown = {};
  // A text cell that a spreadsheet would run as a formula (=, +, -, @, tab, CR first) gets a
  // leading ' (OWASP CSV injection); numbers, and numeric text such as "-0.0012", stay numbers.
  const FORMULA_START = /^[=+\-@\t\r]/;
  const NUMERIC = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
  function csvCell(v) {
    let s = v === null || v === undefined ? "" : String(v);
    if (typeof v === "string" && FORMULA_START.test(s) && !NUMERIC.test(s)) s = "'" + s;
    return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }
  function csv() {
    const lines = [];
    const section = (name, header, rows) => {
      lines.push(csvCell(name));
      lines.push(header.map(csvCell).join(","));
      for (const r of rows) lines.push(r.map(csvCell).join(","));
      lines.push("");
    };
    const t = data.totals;
    if (!t) return "";
    section("window", ["since", "until", "team", "route", "kind", "backend"],
      [[data.window.since, data.window.until, state.team, state.route, state.kind, state.backend]]);
    section("kpis", ["metric", "value"], [
      ["spend_usd", t.cost_usd], ["baseline_usd", t.baseline_cost_usd], ["savings_usd", t.savings_usd],
      ["savings_pct", t.baseline_cost_nanos ? (100 * t.savings_nanos / t.baseline_cost_nanos).toFixed(2) : ""],
      ["requests", t.requests], ["dllm_share", shown.share === null ? "" : shown.share.toFixed(4)],
      ["escalation_rate", t.escalation_rate === null ? "" : t.escalation_rate], ["latency_p95_ms", t.latency_p95_ms],
    ]);
    const chartSection = (name, d, fmt) => section(name, ["label", ...d.datasets.map((s) => s.label)],
      d.labels.map((l, i) => [l, ...d.datasets.map((s) => fmt(s, s.data[i]))]));
    const money = (s, v) => (v === null || v === undefined ? "" : Number(v).toFixed(9));
    if (shown.routeSpend) chartSection("spend_per_route_usd", shown.routeSpend, money);
    if (shown.savings) chartSection("savings_over_time_usd", shown.savings, money);
    if (shown.kinds) chartSection("by_step_kind", shown.kinds, (s, v) => (s.label === "Cost" ? money(s, v) : v));
    if (shown.latency) chartSection("latency_per_backend_ms", shown.latency, (s, v) => v);
    if (shown.escalations) chartSection("escalation_reasons", shown.escalations, (s, v) => v);
    section("top_teams", ["team", "requests", "spend_usd", "baseline_usd", "savings_usd"],
      (shown.teams || []).map((g) => [g.key || "", g.requests, g.cost_usd, g.baseline_cost_usd, g.savings_usd]));
    section("top_keys", ["api_key_id", "team", "requests", "spend_usd", "baseline_usd"],
      (shown.keys || []).map((k) => [k.api_key_id || "", k.team || "", k.requests, k.cost_usd, k.baseline_cost_usd]));
    section("recent_requests", ["started_at", "request_id", "team", "route", "backend", "kind", "status", "cost_usd", "latency_ms", "escalated", "escalation_reason"],
      (data.recent ? data.recent.items : []).map((r) => [r.started_at, r.request_id, r.team || "", r.route, r.backend || "", r.kind, r.status, r.cost_usd === null ? "" : r.cost_usd, r.latency_ms, r.escalated, r.escalation_reason || ""]));
    return lines.join("\n");
  }
  function download() {
    const blob = new Blob([csv()], { type: "text/csv;charset=utf-8" });
    const a = document.createElement("a");
    const since = data.window ? data.window.since.slice(0, 16).replace(/[:]/g, "") : "now";
    a.href = URL.createObjectURL(blob);
    a.download = "stepgate-costs-" + since + ".csv";
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }

  // ---- backend health ----------------------------------------------------------------------------
  // Built with createElement/textContent only: backend names come from the policy file.
  const HEALTH_POLL_MS = 5000; // while any breaker is not closed
  const BADGES = {
    closed: { text: "up", icon: "\u25CF", title: "Circuit closed: calls go through." },
    half_open: { text: "half-open", icon: "\u25D0", title: "Cooldown over: the next call is a probe; its success closes the circuit, a failure opens it again." },
    open: { text: "open", icon: "\u2715", title: "Circuit open: the backend is skipped (its fallbacks answer) until the next probe." },
  };
  let healthTimer = null;
  let healthGeneration = 0;
  let healthLoads = 0;

  function node(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + two(s % 60) + " s";
    return Math.floor(s / 3600) + " h " + two(Math.floor(s / 60) % 60) + " min";
  }
  const unixStamp = (seconds) => stamp(new Date(seconds * 1000).toISOString());

  function badge(b) {
    const kind = BADGES[b.state] || BADGES.open;
    const el = node("span", null, "badge badge-" + (b.state === "closed" ? "up" : b.state));
    el.title = kind.title;
    const icon = node("span", kind.icon, "badge-icon");
    icon.setAttribute("aria-hidden", "true");
    el.append(icon, node("span", kind.text, "badge-text"));
    return el;
  }

  function nextProbe(b, now) {
    if (b.state === "open") {
      if (b.retry_at === null || b.retry_at === undefined) return "–";
      const wait = b.retry_at - now;
      return wait > 0 ? "in " + duration(wait) + " (" + unixStamp(b.retry_at).slice(11) + ")" : "due: the next request probes it";
    }
    if (b.state === "half_open") return b.probes_in_flight ? "probing now" : "the next request probes it";
    return "–";
  }

  function healthRow(b, h) {
    const tr = node("tr");
    tr.dataset.backend = b.name;
    tr.dataset.state = b.state;
    const name = node("td");
    name.append(node("code", b.name));
    const state = node("td", null, "nowrap");
    state.append(badge(b));
    if (!b.ready && b.state !== "open") {
      const warm = node("span", "not ready", "muted small not-ready");
      warm.title = "The connector is still warming up";
      state.append(warm);
    }
    const counts = node("td", nf.format(b.window_failures) + " / " + nf.format(b.window_calls), "num");
    counts.title = "in the last " + h.circuit_breaker.window_s + " s; " + b.consecutive_failures + " failed in a row";
    const open = b.state !== "closed" && b.opened_at !== null && b.opened_at !== undefined;
    const since = node("td", open ? unixStamp(b.opened_at) + " (" + duration(h.now - b.opened_at) + " ago)" : "–", "nowrap");
    tr.append(name, node("td", b.type), state, counts, since, node("td", nextProbe(b, h.now), "nowrap"));
    return tr;
  }

  function renderHealth(h) {
    const body = document.querySelector("#t-health tbody");
    if (!h.backends.length) {
      const td = node("td", "The policy has no backends.");
      td.colSpan = 6;
      const tr = node("tr", null, "empty-row");
      tr.append(td);
      body.replaceChildren(tr);
    } else {
      body.replaceChildren(...h.backends.map((b) => healthRow(b, h)));
    }
    const open = h.backends.filter((b) => b.state === "open").length;
    const half = h.backends.filter((b) => b.state === "half_open").length;
    const total = h.backends.length;
    $("#health").dataset.worst = open ? "open" : half ? "half_open" : "closed";
    const parts = [];
    if (open) parts.push(open + " open");
    if (half) parts.push(half + " half-open");
    const summary = parts.length
      ? parts.join(", ") + " of " + total + " backend" + (total === 1 ? "" : "s")
      : "All " + total + " backend" + (total === 1 ? "" : "s") + " up";
    // role=status announces changes: only touch it when the words change.
    if ($("#health-summary").textContent !== summary) $("#health-summary").textContent = summary;
    const cb = h.circuit_breaker;
    const rule = cb.enabled
      ? "A circuit opens after " + cb.failures + " failures in a row, or " + Math.round(cb.error_rate * 100) +
        "% failed of at least " + cb.min_calls + " calls in " + cb.window_s + " s; it is probed again after " + cb.cooldown_s + " s."
      : "Circuit breakers are off in the policy (circuit_breaker.enabled: false).";
    $("#health-note").textContent = rule + " Checked " + unixStamp(h.now).slice(11) + " UTC" +
      (open || half ? ", refreshing every " + HEALTH_POLL_MS / 1000 + " s." : ".");
  }

  async function loadHealth() {
    const mine = ++healthGeneration;
    clearTimeout(healthTimer);
    healthTimer = null;
    const panel = $("#health");
    const error = $("#health-error");
    try {
      const health = await getJson("/v1/spend/health");
      if (mine !== healthGeneration) return;
      data.health = health;
      renderHealth(health);
      error.hidden = true;
      panel.dataset.state = "ready";
    } catch (err) {
      if (mine !== healthGeneration) return;
      error.textContent = "Could not read backend health: " + err.message;
      error.hidden = false;
      panel.dataset.state = "error";
    }
    healthLoads += 1;
    panel.dataset.loads = String(healthLoads);
    if (data.health && data.health.backends.some((b) => b.state !== "closed")) {
      healthTimer = setTimeout(loadHealth, HEALTH_POLL_MS);
    }
  }

  // ---- loading -----------------------------------------------------------------------------------
  function showError(message) {
    const el = $("#error");
    el.hidden = !message;
    el.textContent = message ? "Could not load the dashboard: " + message : "";
  }

  async function loadRecent() {
    const mine = generation;
    const recent = await getJson("/dashboard/api/requests", recentParams());
    if (mine !== generation) return;
    data.recent = recent;
    renderRecent(recent, data.totals);
  }

  async function load() {
    const mine = ++generation;
    loadHealth(); // on its own: a failed health read must not blank the spend figures
    document.body.dataset.state = "loading";
    writeUrl();
    syncControls();
    showError("");
    const bucket = bucketFor();
    try {
      const [meta, summary, byBackend, byKind, byTeam, series, byRoute, reasons, keys, recent] = await Promise.all([
        data.meta ? Promise.resolve(data.meta) : getJson("/dashboard/api/meta"),
        getJson("/v1/spend/summary", withParams()),
        getJson("/v1/spend/summary", withParams({ group_by: "backend" })),
        getJson("/v1/spend/summary", withParams({ group_by: "kind" })),
        getJson("/v1/spend/summary", withParams({ group_by: "team" })),
        getJson("/v1/spend/timeseries", withParams({ bucket })),
        getJson("/v1/spend/timeseries", withParams({ bucket, group_by: "route" })),
        getJson("/v1/spend/escalations", escalationParams()),
        getJson("/dashboard/api/keys", withParams({ limit: "10" })),
        getJson("/dashboard/api/requests", recentParams()),
      ]);
      if (mine !== generation) return;
      data.meta = meta;
      data.totals = summary.totals;
      data.window = { since: summary.since, until: summary.until };
      data.recent = recent;
      Object.assign(data, { summary, byBackend, byKind, byTeam, series, byRoute, reasons, keys });
      fillSelect("f-team", meta.teams, state.team);
      fillSelect("f-route", meta.routes, state.route);
      fillSelect("f-kind", meta.kinds, state.kind);
      fillSelect("f-backend", Object.keys(meta.backends), state.backend);
      $("#window").textContent = stamp(summary.since) + " → " + stamp(summary.until) + " UTC · " + bucket + " buckets";

      const empty = summary.totals.requests === 0 && summary.totals.attempts === 0;
      $("#empty").hidden = !empty;
      $("#content").hidden = empty;
      $("#empty-text").textContent = FILTERS.some((f) => state[f])
        ? "No requests match these filters in this range. Clear the filters or pick a longer range."
        : "Once requests flow through the gateway, spend, savings and latency appear here within a second.";
      for (const id of Object.keys(charts)) { charts[id].destroy(); delete charts[id]; }
      if (!empty) {
        shown.share = dllmShare(byBackend, meta, summary.totals);
        renderKpis(summary.totals, shown.share);
        shown.routeSpend = drawRouteSpend(series, byRoute, bucket);
        shown.savings = drawSavings(series, bucket);
        shown.kinds = drawKinds(byKind);
        shown.latency = drawLatency(byBackend);
        shown.escalations = drawEscalations(reasons);
        shown.teams = renderTeams(byTeam, summary.totals);
        shown.keys = keys.keys;
        renderKeys(keys);
        renderRecent(recent, summary.totals);
      }
      loads += 1;
      document.body.dataset.loads = String(loads);
      document.body.dataset.readyMs = String(Math.round(performance.now()));
      document.body.dataset.state = empty ? "empty" : "ready";
    } catch (err) {
      if (mine !== generation) return;
      showError(err.message);
      document.body.dataset.state = "error";
    }
  }

  function resetPaging() { state.cursors = [null]; state.page = 0; }

  function wire() {
    document.querySelectorAll(".seg").forEach((b) => b.addEventListener("click", () => {
      if (b.dataset.range === "custom") {
        state.range = "custom";
        if (!state.since) {
          const now = new Date();
          $("#until").value = now.toISOString().slice(0, 16);
          $("#since").value = new Date(now.getTime() - 3 * 86400e3).toISOString().slice(0, 16);
        }
        syncControls();
        return;
      }
      state.range = b.dataset.range; state.since = ""; state.until = "";
      resetPaging(); load();
    }));
    $("#apply-custom").addEventListener("click", () => {
      if (!$("#since").value) { showError("pick a start time for the custom range"); return; }
      state.range = "custom"; state.since = $("#since").value; state.until = $("#until").value;
      resetPaging(); load();
    });
    for (const f of FILTERS) document.getElementById("f-" + f).addEventListener("change", (e) => {
      state[f] = e.target.value; resetPaging(); load();
    });
    $("#clear-filters").addEventListener("click", () => { for (const f of FILTERS) state[f] = ""; resetPaging(); load(); });
    $("#only-escalated").addEventListener("change", (e) => { state.escalatedOnly = e.target.checked; writeUrl(); resetPaging(); loadRecent().catch((err) => showError(err.message)); });
    $("#next").addEventListener("click", () => {
      if (!data.recent || !data.recent.next_cursor) return;
      state.cursors[state.page + 1] = data.recent.next_cursor; state.page += 1;
      loadRecent().catch((err) => showError(err.message));
    });
    $("#prev").addEventListener("click", () => {
      if (state.page === 0) return;
      state.page -= 1; loadRecent().catch((err) => showError(err.message));
    });
    $("#refresh").addEventListener("click", () => { resetPaging(); load(); });
    $("#export").addEventListener("click", download);
  }

  function start() {
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.color = "#475569";
    readUrl();
    document.querySelectorAll("#empty code").forEach((c) => { c.textContent = c.textContent.replace(/<gateway>/g, location.host); });
    if (state.range === "custom") {
      $("#since").value = state.since.slice(0, 16);
      $("#until").value = state.until.slice(0, 16);
    }
    wire();
    load();
  }

  window.stepgateDashboard = { state, data, charts, csv, reload: () => load() };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
