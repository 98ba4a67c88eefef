// RustyBalancer dashboard. Loads an app's state from /api/v1/apps/{app},
// then follows /ws/v1 for live events. Charts are drawn on <canvas> here;
// nothing is loaded from elsewhere.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const CATS = ["LU", "MU", "HU", "INIT", "SUNDOWN"];
  const css = getComputedStyle(document.documentElement);
  const color = (name) => css.getPropertyValue("--" + name).trim();

  const state = {
    app: "",
    token: sessionStorage.getItem("rb-token") || "",
    detail: null, // the last /api/v1/apps/{app} answer, updated live
    thresholds: { high: 55, low: 80, critical: 20, lu: 70, mu: 40 },
    ws: null,
    wsRetry: 0,
    seen: new Set(), // ids of timeline events already shown
    freshRows: new Set(),
    refetchTimer: 0,
    drawQueued: false,
    lastRender: 0,
  };

  // ---------- small DOM helpers ----------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k === "title") el.title = v;
      else el.setAttribute(k, v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const fmt1 = (v) => (v === null || v === undefined || Number.isNaN(v) ? "—" : (Math.round(v * 10) / 10).toFixed(1));
  const fmtRate = (v) => (v >= 100 ? Math.round(v).toString() : fmt1(v));
  const pad2 = (n) => String(n).padStart(2, "0");
  function clock(ms, secs) {
    const d = new Date(ms);
    return pad2(d.getHours()) + ":" + pad2(d.getMinutes()) + (secs ? ":" + pad2(d.getSeconds()) : "");
  }
  function ago(ms) {
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 5) return "just now";
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    if (s < 86400) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }
  function category(score) {
    if (score >= state.thresholds.lu) return "LU";
    if (score >= state.thresholds.mu) return "MU";
    return "HU";
  }

  // ---------- network ----------
  function authHeaders() {
    return state.token ? { Authorization: "Bearer " + state.token } : {};
  }
  async function api(path) {
    const res = await fetch(path, { headers: authHeaders(), cache: "no-store" });
    if (res.status === 401) {
      $("tokenform").classList.remove("hidden");
      throw new Error("the gateway needs a token: enter RB_GATEWAY_TOKEN above");
    }
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      const err = new Error(body.error || res.status + " " + res.statusText);
      err.status = res.status;
      throw err;
    }
    return body;
  }
  function notice(msg) {
    const n = $("notice");
    n.textContent = msg || "";
    n.classList.toggle("hidden", !msg);
  }
  function setConn(kind, text) {
    const c = $("conn");
    c.className = "conn " + kind;
    c.querySelector(".text").textContent = text;
  }

  async function loadApps() {
    let body;
    try {
      body = await api("/api/v1/apps");
    } catch (e) {
      notice("Cannot read the gateway: " + e.message);
      return false;
    }
    const sel = $("app");
    const names = body.apps.map((a) => a.app);
    const wanted = new URLSearchParams(location.search).get("app") || state.app || body.default_app;
    if (names.length === 0) {
      notice(
        "No events seen yet. Apps appear as soon as the queue-builder, scorer or scaler publish " +
          "(default app: " + body.default_app + "). This page updates by itself."
      );
    }
    const list = names.includes(wanted) || !wanted ? names : [wanted, ...names];
    const current = Array.from(sel.options).map((o) => o.value);
    if (current.join("\n") !== list.join("\n")) {
      sel.replaceChildren(...list.map((n) => h("option", { value: n, text: n })));
    }
    const pick = list.includes(wanted) ? wanted : list[0];
    if (pick && pick !== state.app) {
      sel.value = pick;
      selectApp(pick);
    }
    return names.length > 0;
  }

  function selectApp(app) {
    state.app = app;
    const url = new URL(location.href);
    url.searchParams.set("app", app);
    history.replaceState(null, "", url);
    document.title = "RustyBalancer · " + app;
    state.detail = null;
    state.seen.clear();
    connect();
  }

  // The WebSocket opens first and its events wait in a buffer until the
  // state is loaded, so nothing between the two is lost.
  function connect() {
    if (state.ws) {
      state.ws.onclose = null;
      state.ws.close();
    }
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const q = new URLSearchParams({ app: state.app, events: "queue,score,scale,lifecycle,proxy,config" });
    if (state.token) q.set("access_token", state.token);
    const ws = new WebSocket(proto + "//" + location.host + "/ws/v1?" + q);
    state.ws = ws;
    const buffer = [];
    let loaded = false;
    setConn("", "connecting…");
    ws.onopen = async () => {
      state.wsRetry = 0;
      setConn("live", "live");
      try {
        await loadDetail();
        loaded = true;
        for (const ev of buffer) onEvent(ev);
        buffer.length = 0;
        render();
      } catch (e) {
        if (e.status === 404) {
          notice("No events for app " + state.app + " yet; waiting for the first ones.");
          loaded = true;
          state.detail = emptyDetail();
          render();
        } else {
          notice("Cannot load " + state.app + ": " + e.message);
          loaded = true;
          buffer.length = 0;
          refetchSoon(3000); // try again; live events resume once it succeeds
        }
      }
    };
    ws.onmessage = (m) => {
      let ev;
      try {
        ev = JSON.parse(m.data);
      } catch {
        return;
      }
      if (!loaded) buffer.push(ev);
      else onEvent(ev);
    };
    ws.onclose = () => {
      if (state.ws !== ws) return;
      const wait = Math.min(30, 2 ** state.wsRetry++);
      setConn("down", "reconnecting in " + wait + " s");
      setTimeout(() => state.ws === ws && connect(), wait * 1000);
    };
  }

  async function loadDetail() {
    const d = await api("/api/v1/apps/" + encodeURIComponent(state.app) + "?points=600");
    state.detail = d;
    state.seen = new Set(d.timeline.map((e) => e.id));
    notice("");
    loadThresholds();
  }

  async function loadThresholds() {
    try {
      const c = await api("/api/v1/apps/" + encodeURIComponent(state.app) + "/config");
      const e = c.effective || {};
      const num = (k, d) => (e[k] !== undefined ? Number(e[k]) : d);
      state.thresholds = {
        high: num("HIGH_LOAD_THRESHOLD", 55),
        low: num("LOW_LOAD_THRESHOLD", 80),
        critical: num("CRITICAL_LOAD_THRESHOLD", 20),
        lu: num("RB_LU_CUTOFF", 70),
        mu: num("RB_MU_CUTOFF", 40),
      };
    } catch {
      // No Redis behind the gateway: keep the defaults.
    }
    const t = state.thresholds;
    $("thr").textContent = "HIGH " + t.high + " · LOW " + t.low;
    document.querySelectorAll(".cut-lu").forEach((e) => (e.textContent = t.lu));
    document.querySelectorAll(".cut-mu").forEach((e) => (e.textContent = t.mu));
    scheduleDraw();
  }

  function emptyDetail() {
    return { summary: { app: state.app, workers: 0, active: 0, starting: 0, sundown: 0 }, workers: [], score_history: {},
      capacity: [], proxy: [], proxies: [], timeline: [] };
  }

  // ---------- live events ----------
  function onEvent(ev) {
    const d = state.detail;
    if (!d || !ev || !ev.data || ev.data.app !== state.app) return;
    const t = Date.parse(ev.time);
    switch (ev.kind) {
      case "score":
        onScore(d, ev.data, t);
        break;
      case "proxy_report":
        onProxy(d, ev.data, t);
        break;
      case "queue":
        onQueue(d, ev.data);
        break;
      case "decision":
      case "lifecycle":
      case "config_changed":
        if (!state.seen.has(ev.id)) {
          state.seen.add(ev.id);
          d.timeline.push(ev);
          if (ev.kind === "decision") {
            d.capacity.push({ t, desired: ev.data.to, actual: ev.data.inputs.active || 0, sundown: ev.data.inputs.sundown || 0, source: "decision" });
            d.summary.desired = ev.data.to;
          }
          if (ev.kind === "config_changed") loadThresholds();
        }
        // Lifecycle and config change rows and summary: read them again (at most once a second).
        refetchSoon();
        break;
    }
    scheduleDraw();
  }

  function onScore(d, s, t) {
    const p = { t, cpu: s.cpu_score, mem: s.memory_score, net: s.network_score, avail: s.availability_score, overall: s.overall_score };
    const hist = (d.score_history[s.container] ||= []);
    if (hist.length && hist[hist.length - 1].t >= t) return;
    hist.push(p);
    if (hist.length > 1200) hist.splice(0, hist.length - 1200);
    const w = d.workers.find((w) => w.container === s.container);
    if (w) {
      w.scores = p;
      w.scored_at = new Date(t).toISOString();
    } else {
      refetchSoon(); // a worker the page does not know yet
    }
  }

  function onProxy(d, r, t) {
    const last = d.proxy[d.proxy.length - 1];
    if (last && last.t >= t) return;
    // One proxy's report; the server's points sum all proxies, so for more
    // than one proxy take the summed values from the next read.
    let inflight = 0, req = 0, errs = 0;
    for (const b of r.backends || []) {
      inflight += b.in_flight;
      if (r.interval_seconds > 0) {
        req += b.requests / r.interval_seconds;
        errs += b.errors / r.interval_seconds;
      }
      const w = d.workers.find((w) => w.container === b.container);
      if (w && (d.proxies || []).length <= 1) {
        w.in_flight = b.in_flight;
        w.requests_per_second = r.interval_seconds > 0 ? b.requests / r.interval_seconds : 0;
        w.errors_per_second = r.interval_seconds > 0 ? b.errors / r.interval_seconds : 0;
      }
    }
    if ((d.proxies || []).length <= 1) {
      d.proxy.push({ t, in_flight: inflight, requests_per_second: req, errors_per_second: errs, proxies: 1 });
      Object.assign(d.summary, { in_flight: inflight, requests_per_second: req, errors_per_second: errs, proxies: 1 });
      if (!d.proxies || d.proxies.length === 0) refetchSoon();
    } else {
      refetchSoon();
    }
  }

  function onQueue(d, q) {
    const known = new Set(d.workers.map((w) => w.container));
    for (const it of q.items) if (!known.has(it.container)) state.freshRows.add(it.container);
    // Rows come from the server, which joins the queue with scores,
    // lifecycle and proxy reports: read them again now.
    refetchSoon(0);
  }

  function refetchSoon(delay = 1000) {
    if (state.refetchTimer) {
      if (delay > 0) return;
      clearTimeout(state.refetchTimer);
    }
    state.refetchTimer = setTimeout(async () => {
      state.refetchTimer = 0;
      const app = state.app;
      try {
        const fresh = await api("/api/v1/apps/" + encodeURIComponent(app) + "?points=600");
        if (app !== state.app) return;
        // Keep the longer of the two score histories (live points may be newer).
        for (const [name, pts] of Object.entries(state.detail ? state.detail.score_history : {})) {
          const f = fresh.score_history[name];
          if (!f || (pts.length && f.length && pts[pts.length - 1].t > f[f.length - 1].t)) fresh.score_history[name] = pts;
        }
        state.detail = fresh;
        for (const e of fresh.timeline) state.seen.add(e.id);
        notice("");
        scheduleDraw();
      } catch (e) {
        if (e.status !== 404) {
          notice("Cannot refresh " + app + ": " + e.message);
          if (!state.detail) refetchSoon(5000);
        }
      }
    }, delay);
  }

  function scheduleDraw() {
    if (state.drawQueued) return;
    state.drawQueued = true;
    requestAnimationFrame(() => {
      state.drawQueued = false;
      render();
    });
  }

  // ---------- rendering ----------
  function render() {
    const d = state.detail;
    if (!d) return;
    state.lastRender = Date.now();
    renderCards(d);
    renderQueue(d);
    renderCapacity(d);
    renderTraffic(d);
    renderSparks(d);
    renderTimeline(d);
  }

  function renderCards(d) {
    const s = d.summary;
    const serving = (s.active || 0) + (s.starting || 0);
    $("c-workers").textContent = s.workers ? serving : "0";
    $("c-workers-hint").textContent = s.active + " active · " + s.starting + " starting · " + s.sundown + " draining";
    const lastDecision = [...d.timeline].reverse().find((e) => e.kind === "decision");
    $("c-desired").textContent = s.desired === undefined || s.desired === null ? "—" : s.desired;
    $("c-desired-hint").textContent = lastDecision
      ? "min " + lastDecision.data.inputs.min + " · max " + lastDecision.data.inputs.max
      : "no decision yet";
    const scored = d.workers.filter((w) => w.on_queue && w.state !== "SUNDOWN" && w.scores);
    const mean = scored.length ? scored.reduce((a, w) => a + w.scores.overall, 0) / scored.length : null;
    const meanEl = $("c-mean");
    meanEl.replaceChildren(mean === null ? "—" : fmt1(mean));
    if (mean !== null) meanEl.append(" ", h("span", { class: "cat " + category(mean), text: category(mean) }));
    $("c-rps").textContent = s.proxies ? fmtRate(s.requests_per_second) : "—";
    $("c-rps-hint").textContent = s.proxies ? "through " + s.proxies + (s.proxies === 1 ? " proxy" : " proxies") : "no proxy reporting";
    $("c-eps").textContent = s.proxies ? fmtRate(s.errors_per_second) : "—";
    $("c-eps").classList.toggle("warn", s.errors_per_second > 0);
    const ratio = s.requests_per_second > 0 ? (100 * s.errors_per_second) / s.requests_per_second : 0;
    $("c-eps-hint").textContent = s.proxies ? ratio.toFixed(2) + " % of requests" : "5xx and failed connections";
    $("c-inflight").textContent = s.proxies ? s.in_flight : "—";
    if (lastDecision) {
      const x = lastDecision.data;
      $("c-last").textContent = actionText(x.action) + " " + x.from + " → " + x.to;
      $("c-last-hint").textContent = ago(Date.parse(lastDecision.time)) + ": " + x.reason;
      $("c-last-hint").title = x.reason;
    }
    $("gen").textContent = s.queue_generation ? "generation " + s.queue_generation + " · " + ago(Date.parse(s.queue_at)) : "no queue yet";
    $("proxies").textContent = s.proxies ? s.proxies + (s.proxies === 1 ? " proxy" : " proxies") + " reporting" : "no proxy reporting";
  }

  function meter(value, max, cls, label) {
    const pct = Math.max(0, Math.min(100, (100 * value) / max));
    const fill = h("div", { class: "fill " + cls });
    fill.style.width = pct + "%";
    return h("div", { class: "meter" }, h("div", { class: "track" }, fill), h("span", { class: "v", text: label }));
  }

  function renderQueue(d) {
    const tbody = document.querySelector("#queue tbody");
    if (d.workers.length === 0) {
      tbody.replaceChildren(h("tr", {}, h("td", { class: "empty", colspan: "12", text: "No workers on the queue yet." })));
      return;
    }
    const rows = d.workers.map((w) => {
      const cat = w.category || "INIT";
      const s = w.scores;
      const overall = s ? s.overall : w.score;
      const fact = w.phase ? w.phase + (w.phase_at ? " " + ago(Date.parse(w.phase_at)) : "") : w.on_queue ? "" : "not on the queue";
      const tr = h(
        "tr",
        { "data-worker": w.container, class: (w.state === "SUNDOWN" ? "sundown " : "") + (state.freshRows.has(w.container) ? "fresh" : "") },
        h("td", { class: "worker", title: w.container_id || "" }, w.container, w.address ? h("span", { class: "addr", text: w.address }) : null),
        h("td", {}, h("span", { class: "cat " + cat, text: cat })),
        h("td", { class: "bar" }, meter(overall, 100, cat === "SUNDOWN" || cat === "INIT" ? cat : category(overall), fmt1(overall))),
        h("td", { class: "bar" }, w.state === "SUNDOWN" ? "no new requests" : meter(w.share * 100, 100, "share", Math.round(w.share * 100) + " %")),
        h("td", { class: "num", text: s ? fmt1(s.cpu) : "—" }),
        h("td", { class: "num", text: s ? fmt1(s.mem) : "—" }),
        h("td", { class: "num", text: s ? fmt1(s.net) : "—" }),
        h("td", { class: "num", text: s ? fmt1(s.avail) : "—" }),
        h("td", { class: "num", text: w.in_flight ?? 0 }),
        h("td", { class: "num", text: fmtRate(w.requests_per_second || 0) }),
        h("td", { class: "num" + (w.errors_per_second > 0 ? " warn" : ""), text: fmtRate(w.errors_per_second || 0) + (w.ejected ? " ejected" : "") }),
        h("td", { class: "fact", title: w.phase_reason || "", text: fact })
      );
      return tr;
    });
    tbody.replaceChildren(...rows);
    setTimeout(() => state.freshRows.clear(), 2500);
  }

  function windowMs() {
    return Number($("window").value) * 1000;
  }

  function renderCapacity(d) {
    const now = Date.now();
    const t0 = now - windowMs();
    const pts = d.capacity.filter((p) => p.t >= t0 - 86400000).sort((a, b) => a.t - b.t);
    const desired = [], actual = [], sundown = [];
    let lastDesired = d.summary.desired;
    for (const p of pts) {
      if (p.desired !== undefined && p.desired !== null) {
        desired.push([p.t, p.desired]);
        lastDesired = p.desired;
      }
      actual.push([p.t, p.actual]);
      sundown.push([p.t, p.sundown]);
    }
    const top = Math.max(2, ...desired.map((p) => p[1]), ...actual.map((p) => p[1] + 0), d.summary.desired || 0) + 1;
    chart($("capacity"), {
      t0, t1: now, yMin: 0, yMax: top, integer: true,
      series: [
        { pts: sundown, color: color("SUNDOWN"), width: 1.5, step: true, extend: d.summary.sundown },
        { pts: actual, color: color("actual"), width: 2.5, step: true, extend: (d.summary.active || 0) + (d.summary.starting || 0) },
        { pts: desired, color: color("desired"), width: 2, dash: [6, 4], step: true, extend: lastDesired },
      ],
      empty: "no queue change or decision in this window",
    });
  }

  function renderTraffic(d) {
    const now = Date.now();
    const t0 = now - windowMs();
    const pts = d.proxy.filter((p) => p.t >= t0);
    const rps = pts.map((p) => [p.t, p.requests_per_second]);
    const eps = pts.map((p) => [p.t, p.errors_per_second]);
    const inf = pts.map((p) => [p.t, p.in_flight]);
    const top = niceMax(Math.max(1, ...rps.map((p) => p[1]), ...eps.map((p) => p[1])));
    chart($("traffic"), { t0, t1: now, yMin: 0, yMax: top, unit: "/s",
      series: [{ pts: rps, color: color("rps"), width: 2 }, { pts: eps, color: color("eps"), width: 2 }],
      empty: "no proxy report in this window" });
    chart($("inflight"), { t0, t1: now, yMin: 0, yMax: niceMax(Math.max(1, ...inf.map((p) => p[1]))), integer: true, ticks: 2,
      series: [{ pts: inf, color: color("inflight"), width: 2, fill: true }], empty: "" });
  }

  function renderSparks(d) {
    const box = $("sparks");
    const names = d.workers.map((w) => w.container).filter((n) => d.score_history[n]);
    if (names.length === 0) {
      box.replaceChildren(h("div", { class: "empty", text: "No scores yet: the scorer publishes one per worker every sample." }));
      return;
    }
    const existing = new Map(Array.from(box.querySelectorAll(".spark")).map((e) => [e.dataset.worker, e]));
    const now = Date.now();
    const t0 = now - windowMs();
    const t = state.thresholds;
    const cards = names.map((name) => {
      let card = existing.get(name);
      if (!card) {
        card = h("div", { class: "spark", "data-worker": name },
          h("div", { class: "head" }, h("span", { class: "title", text: name, title: name }), h("span", { class: "now" })),
          h("canvas", { "aria-label": "score history of " + name }));
      }
      const hist = d.score_history[name];
      const last = hist[hist.length - 1];
      const w = d.workers.find((x) => x.container === name);
      const cat = w && (w.category === "SUNDOWN" || w.category === "INIT") ? w.category : category(last.overall);
      card.querySelector(".now").replaceChildren(h("span", { class: "cat " + cat, text: cat }), " overall ", h("b", { text: fmt1(last.overall) }));
      const pts = hist.filter((p) => p.t >= t0);
      const line = (k) => pts.map((p) => [p.t, p[k]]);
      card._draw = () =>
        chart(card.querySelector("canvas"), {
          t0, t1: now, yMin: 0, yMax: 100, compact: true, yTicks: [0, 50, 100],
          guides: [{ v: t.high, color: "#94a3b8" }, { v: t.low, color: "#94a3b8" }],
          series: [
            { pts: line("cpu"), color: color("cpu"), width: 1.3 },
            { pts: line("mem"), color: color("mem"), width: 1.3 },
            { pts: line("net"), color: color("net"), width: 1.3 },
            { pts: line("avail"), color: color("avail"), width: 1.3 },
            { pts: line("overall"), color: color("overall"), width: 2.4 },
          ],
          empty: "no score in this window",
        });
      return card;
    });
    box.replaceChildren(...cards);
    for (const c of cards) c._draw();
  }

  function actionText(a) {
    return { scale_up: "scale up", scale_down: "scale down", replace: "replace", remove: "remove", hold: "hold" }[a] || a;
  }

  function renderTimeline(d) {
    const showLife = $("f-lifecycle").checked, showCfg = $("f-config").checked, showHold = $("f-hold").checked;
    const list = [];
    for (let i = d.timeline.length - 1; i >= 0 && list.length < 200; i--) {
      const e = d.timeline[i];
      const x = e.data;
      let tag, what, why;
      if (e.kind === "decision") {
        if (x.action === "hold" && !showHold) continue;
        tag = h("span", { class: "tag " + x.action, text: actionText(x.action) });
        what = x.from === x.to ? x.to + " workers" : x.from + " → " + x.to + " workers";
        if (x.targets && x.targets.length) what += ": " + x.targets.join(", ");
        why = x.reason;
        const inp = x.inputs || {};
        if (inp.mean_score !== undefined) why += " (mean " + fmt1(inp.mean_score) + ", min " + fmt1(inp.min_score) + ")";
      } else if (e.kind === "lifecycle") {
        if (!showLife) continue;
        tag = h("span", { class: "tag " + x.phase, text: x.phase });
        what = x.container;
        why = [x.reason, x.error].filter(Boolean).join(": ");
      } else if (e.kind === "config_changed") {
        if (!showCfg) continue;
        tag = h("span", { class: "tag config", text: "config v" + x.version });
        what = (x.changed || []).map((k) => k + (x.values && k in x.values ? "=" + x.values[k] : " reset")).join(", ") || "no change";
        why = x.by ? "by " + x.by : "";
      } else continue;
      const t = Date.parse(e.time);
      list.push(
        h("li", { "data-kind": e.kind },
          h("span", { class: "when", title: e.time }, clock(t, true), h("small", { text: ago(t) })),
          h("span", { class: "what" }, tag, what, why ? h("span", { class: "why", text: why }) : null))
      );
    }
    if (list.length === 0) list.push(h("li", { class: "empty", text: "Nothing yet: decisions appear here as the scaler makes them." }));
    $("timeline").replaceChildren(...list);
  }

  // ---------- charts ----------
  function niceMax(v) {
    const e = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * e >= v) return m * e;
    return 10 * e;
  }
  const TIME_STEPS = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600].map((s) => s * 1000);

  // chart draws line series on a canvas: times on x (t0..t1), values on y.
  function chart(canvas, o) {
    const dpr = window.devicePixelRatio || 1;
    const W = canvas.clientWidth, H = canvas.clientHeight;
    if (!W || !H) return;
    if (canvas.width !== Math.round(W * dpr) || canvas.height !== Math.round(H * dpr)) {
      canvas.width = Math.round(W * dpr);
      canvas.height = Math.round(H * dpr);
    }
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    const L = o.compact ? 26 : 40, R = 8, T = 6, B = o.compact ? 14 : 18;
    const pw = W - L - R, ph = H - T - B;
    const x = (t) => L + ((t - o.t0) / (o.t1 - o.t0)) * pw;
    const y = (v) => T + ph - ((v - o.yMin) / (o.yMax - o.yMin)) * ph;
    g.font = (o.compact ? "10px" : "11px") + " system-ui, sans-serif";
    g.textBaseline = "middle";
    // y grid and labels
    let ticks = o.yTicks;
    if (!ticks) {
      ticks = [];
      const span = o.yMax - o.yMin;
      const n = o.ticks || (o.integer ? 5 : 4);
      const step = o.integer ? Math.max(1, Math.ceil(span / n)) : span / n;
      for (let v = o.yMin; v <= o.yMax + 1e-9; v += step) ticks.push(v);
    }
    g.strokeStyle = "#243041";
    g.fillStyle = "#8b98ab";
    g.lineWidth = 1;
    g.textAlign = "right";
    for (const v of ticks) {
      const yy = Math.round(y(v)) + 0.5;
      g.beginPath();
      g.moveTo(L, yy);
      g.lineTo(W - R, yy);
      g.stroke();
      g.fillText(fmtTick(v) + (o.unit && v === ticks[ticks.length - 1] ? o.unit : ""), L - 5, yy);
    }
    // x ticks
    const span = o.t1 - o.t0;
    const step = TIME_STEPS.find((s) => span / s <= (o.compact ? 3 : 6)) || 21600000;
    g.textAlign = "center";
    g.textBaseline = "top";
    for (let t = Math.ceil(o.t0 / step) * step; t <= o.t1; t += step) {
      const xx = Math.round(x(t)) + 0.5;
      g.strokeStyle = "#1e2835";
      g.beginPath();
      g.moveTo(xx, T);
      g.lineTo(xx, T + ph);
      g.stroke();
      if (xx > L + 14 && xx < W - R - 14) g.fillText(clock(t, step < 60000), xx, T + ph + 3);
    }
    for (const gd of o.guides || []) {
      g.save();
      g.setLineDash([4, 3]);
      g.strokeStyle = gd.color;
      g.globalAlpha = 0.7;
      g.beginPath();
      g.moveTo(L, y(gd.v));
      g.lineTo(W - R, y(gd.v));
      g.stroke();
      g.restore();
    }
    let drawn = 0;
    g.save();
    g.beginPath();
    g.rect(L, T - 2, pw, ph + 4);
    g.clip();
    for (const s of o.series) {
      const pts = s.pts;
      if (!pts.length && s.extend === undefined) continue;
      g.save();
      g.strokeStyle = s.color;
      g.lineWidth = s.width || 1.5;
      g.lineJoin = "round";
      if (s.dash) g.setLineDash(s.dash);
      g.beginPath();
      let prevT = null, prevV = null;
      const gap = gapOf(pts);
      for (const [t, v] of pts) {
        if (prevT === null || (!s.step && t - prevT > gap)) {
          g.moveTo(x(t), y(v));
        } else if (s.step) {
          g.lineTo(x(t), y(prevV));
          g.lineTo(x(t), y(v));
        } else {
          g.lineTo(x(t), y(v));
        }
        prevT = t;
        prevV = v;
        drawn++;
      }
      if (s.step) {
        // A step series holds its value until now; with no point in the window, the current value.
        const v = prevV !== null ? prevV : s.extend;
        if (v !== undefined && v !== null) {
          if (prevT === null) g.moveTo(x(o.t0), y(v));
          g.lineTo(x(o.t1), y(v));
          drawn++;
        }
      }
      g.stroke();
      if (!s.step && pts.length === 1) {
        g.fillStyle = s.color;
        g.beginPath();
        g.arc(x(pts[0][0]), y(pts[0][1]), 2.5, 0, 2 * Math.PI);
        g.fill();
      }
      if (s.fill && pts.length > 1) {
        g.lineTo(x(pts[pts.length - 1][0]), y(o.yMin));
        g.lineTo(x(pts[0][0]), y(o.yMin));
        g.closePath();
        g.globalAlpha = 0.15;
        g.fillStyle = s.color;
        g.fill();
      }
      g.restore();
    }
    g.restore();
    if (!drawn && o.empty) {
      g.fillStyle = "#6b7689";
      g.textAlign = "center";
      g.textBaseline = "middle";
      g.fillText(o.empty, L + pw / 2, T + ph / 2);
    }
  }
  function fmtTick(v) {
    if (Math.abs(v) >= 1000) return (v / 1000).toFixed(v % 1000 ? 1 : 0) + "k";
    return Number.isInteger(v) ? String(v) : v.toFixed(1);
  }
  // gapOf is the pause between points after which a line breaks: 5 × the median step.
  function gapOf(pts) {
    if (pts.length < 3) return Infinity;
    const d = [];
    for (let i = 1; i < pts.length; i++) d.push(pts[i][0] - pts[i - 1][0]);
    d.sort((a, b) => a - b);
    return Math.max(5 * d[Math.floor(d.length / 2)], 5000);
  }

  // ---------- wiring ----------
  $("app").addEventListener("change", (e) => selectApp(e.target.value));
  $("window").addEventListener("change", () => scheduleDraw());
  for (const id of ["f-lifecycle", "f-config", "f-hold"]) $(id).addEventListener("change", () => scheduleDraw());
  $("tokenform").addEventListener("submit", (e) => {
    e.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem("rb-token", state.token);
    $("tokenform").classList.add("hidden");
    state.app = "";
    loadApps();
  });
  window.addEventListener("resize", () => scheduleDraw());
  // Relative times and the charts' right edge move on without events.
  setInterval(() => {
    if (Date.now() - state.lastRender > 1900) scheduleDraw();
  }, 2000);

  // Look for new apps now and then (often while there is none).
  async function poll() {
    const found = await loadApps();
    setTimeout(poll, found ? 15000 : 3000);
  }
  poll();
})();
