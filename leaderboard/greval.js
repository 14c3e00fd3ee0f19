/* greval leaderboard: tabs, sorting, filtering, breakdowns and the sample viewer.
   Everything that came from a run (model names, outputs, errors) is untrusted text:
   it reaches the page through textContent only, never parsed as HTML. */
(function () {
  "use strict";

  var SVG_NS = "http://www.w3.org/2000/svg";

  function $(id) { return document.getElementById(id); }
  function each(list, fn) { Array.prototype.forEach.call(list, fn); }
  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function readData(id) {
    var node = $(id);
    return node ? JSON.parse(node.textContent) : null;
  }
  function pct(v) { return v === null || v === undefined ? "—" : (100 * v).toFixed(1); }
  function km(v) {
    if (v === null || v === undefined) return "—";
    return v < 10 ? v.toFixed(2) + " km" : Math.round(v).toLocaleString("en-US") + " km";
  }
  function coord(lat, lon) {
    if (lat === null || lon === null || lat === undefined || lon === undefined) return "—";
    return lat.toFixed(4) + ", " + lon.toFixed(4);
  }

  document.documentElement.classList.add("js");

  /* ---------- sortable tables (both pages) ---------- */

  function sortRows(tbody, col, sign) {
    var rows = Array.prototype.slice.call(tbody.rows);
    rows.sort(function (r1, r2) {
      var a = r1.cells[col].getAttribute("data-sort"), b = r2.cells[col].getAttribute("data-sort");
      if (a === b) return 0;
      if (a === "" || a === null) return 1; // missing values always last
      if (b === "" || b === null) return -1;
      var x = Number(a), y = Number(b);
      var c = !isNaN(x) && !isNaN(y) ? x - y : a.localeCompare(b);
      return sign * c;
    });
    rows.forEach(function (r) { tbody.appendChild(r); });
  }

  function makeSortable(table) {
    var heads = table.tHead.rows[0].cells;
    each(heads, function (th, col) {
      var button = th.querySelector("button");
      if (!button) return;
      button.addEventListener("click", function () {
        var now = th.getAttribute("aria-sort");
        var dir = now === "descending" ? "ascending" : now === "ascending" ? "descending"
          : th.getAttribute("data-dir") === "desc" ? "descending" : "ascending";
        each(heads, function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir);
        sortRows(table.tBodies[0], col, dir === "ascending" ? 1 : -1);
      });
    });
  }

  /* ---------- leaderboard page ---------- */

  function initIndex() {
    var analysis = readData("analysis-data") || {};
    var alpha = $("analysis-data") ? Number($("analysis-data").getAttribute("data-alpha")) : 0.05;
    var tabs = document.querySelectorAll('[role="tab"]');
    var currentTask = tabs.length ? tabs[0].getAttribute("data-task") : null;

    each(document.querySelectorAll("table.sortable"), makeSortable);

    function applyFilter() {
      var words = $("filter-text").value.trim().toLowerCase().split(/\s+/).filter(Boolean);
      var kind = $("filter-kind").value;
      var shown = 0, total = 0;
      each(document.querySelectorAll("section.panel"), function (panel) {
        var active = panel.getAttribute("data-task") === currentTask;
        each(panel.querySelectorAll("tbody tr"), function (tr) {
          var hay = tr.getAttribute("data-search") || "";
          var ok = (!kind || tr.getAttribute("data-kind") === kind) &&
            words.every(function (w) { return hay.indexOf(w) !== -1; });
          tr.hidden = !ok;
          if (active) { total += 1; if (ok) shown += 1; }
        });
      });
      $("filter-count").textContent = shown === total ? "" : shown + " of " + total + " runs shown";
      $("filter-empty").hidden = shown !== 0;
    }

    function onFilter() { applyFilter(); renderScenes(); renderSignificance(); }

    // Indices (into analysis[task].runs) of the runs the filter leaves visible.
    function visibleRuns(data) {
      var shown = {};
      each(document.querySelectorAll("section.panel:not([hidden]) tbody tr:not([hidden])"), function (tr) {
        shown[tr.getAttribute("data-slug")] = true;
      });
      return data.runs.map(function (_, i) { return i; }).filter(function (i) { return shown[data.runs[i].slug]; });
    }

    function activate(tab) {
      each(tabs, function (t) {
        var on = t === tab;
        t.setAttribute("aria-selected", on ? "true" : "false");
        t.tabIndex = on ? 0 : -1;
        $(t.getAttribute("aria-controls")).hidden = !on;
      });
      currentTask = tab.getAttribute("data-task");
      each(document.querySelectorAll(".task-name"), function (n) { n.textContent = "· " + currentTask; });
      applyFilter();
      renderScenes();
      renderSignificance();
    }

    each(tabs, function (tab, i) {
      tab.addEventListener("click", function () { activate(tab); });
      tab.addEventListener("keydown", function (e) {
        var step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
        if (!step) return;
        var next = tabs[(i + step + tabs.length) % tabs.length];
        next.focus();
        activate(next);
      });
    });
    $("filter-text").addEventListener("input", onFilter);
    $("filter-kind").addEventListener("change", onFilter);
    $("scene-granularity").addEventListener("change", renderScenes);
    $("sig-granularity").addEventListener("change", renderSignificance);

    function runLabel(run) { return run.model + (run.run_id !== run.model ? " (" + run.run_id + ")" : ""); }

    function renderScenes() {
      var box = $("scene-table");
      box.textContent = "";
      var data = analysis[currentTask];
      if (!data || !data.scenes.scenes.length) { box.appendChild(el("p", "No per-scene metrics for this task.", "muted")); return; }
      var key = $("scene-granularity").value, acc = data.scenes.acc[key], scenes = data.scenes.scenes;
      var table = el("table", null, "board scenes sortable"), head = table.createTHead().insertRow(), body = table.createTBody();
      var th = el("th"); th.appendChild(el("button", "Model")); th.setAttribute("data-dir", "asc"); head.appendChild(th);
      scenes.forEach(function (scene) {
        var h = el("th", null, "num"); h.setAttribute("data-dir", "desc");
        var b = el("button", scene.name); b.appendChild(el("span", "n = " + scene.n, "sub")); h.appendChild(b); head.appendChild(h);
      });
      var rowsShown = visibleRuns(data);
      var best = scenes.map(function (_, s) {
        var vals = rowsShown.map(function (r) { return acc[r][s]; }).filter(function (v) { return v !== null; });
        return vals.length > 1 && Math.max.apply(null, vals) !== Math.min.apply(null, vals) ? Math.max.apply(null, vals) : null;
      });
      rowsShown.forEach(function (r) {
        var run = data.runs[r], tr = body.insertRow(), name = el("td", runLabel(run), "txt");
        name.setAttribute("data-sort", runLabel(run).toLowerCase()); tr.appendChild(name);
        scenes.forEach(function (_, s) {
          var v = acc[r][s], td = el("td", pct(v), "num" + (v !== null && v === best[s] ? " best" : ""));
          td.setAttribute("data-sort", v === null ? "" : String(v)); tr.appendChild(td);
        });
      });
      box.appendChild(table);
      makeSortable(table);
    }

    function renderSignificance() {
      var box = $("sig-matrix");
      box.textContent = "";
      var data = analysis[currentTask];
      if (!data || data.runs.length < 2) { box.appendChild(el("p", "Needs at least two runs on this task.", "muted")); return; }
      var key = $("sig-granularity").value, pairs = {};
      (data.pairs[key] || []).forEach(function (p) { pairs[p[0] + ":" + p[1]] = p; });
      var order = visibleRuns(data);
      if (order.length < 2) { box.appendChild(el("p", "Needs at least two runs shown.", "muted")); return; }
      order.sort(function (a, b) { return (data.acc[key][b] || 0) - (data.acc[key][a] || 0); });
      var table = el("table", null, "board matrix"), head = table.createTHead().insertRow(), body = table.createTBody();
      head.appendChild(el("th", "Row vs column"));
      order.forEach(function (j, c) { var h = el("th", String(c + 1), "num"); h.title = runLabel(data.runs[j]); head.appendChild(h); });
      order.forEach(function (i, r) {
        var tr = body.insertRow(), name = el("th", (r + 1) + ". " + runLabel(data.runs[i]) + "  ", "txt");
        name.appendChild(el("span", pct(data.acc[key][i]) + "%", "muted"));
        name.scope = "row"; tr.appendChild(name);
        order.forEach(function (j) {
          var td = el("td", null, "num cell");
          if (i === j) { td.textContent = "·"; td.className += " diag"; tr.appendChild(td); return; }
          var p = pairs[Math.min(i, j) + ":" + Math.max(i, j)];
          if (!p) { td.textContent = "n/a"; td.title = "no shared samples"; tr.appendChild(td); return; }
          var accRow = i < j ? p[3] : p[4], accCol = i < j ? p[4] : p[3], diff = 100 * (accRow - accCol);
          td.textContent = (diff > 0 ? "+" : "") + diff.toFixed(1);
          td.className += p[5] < alpha ? (diff > 0 ? " sig-better" : " sig-worse") : " sig-ns";
          td.title = runLabel(data.runs[i]) + " vs " + runLabel(data.runs[j]) + ": " + pct(accRow) + "% vs " + pct(accCol) +
            "% on " + p[2] + " shared samples, p = " + p[5];
          tr.appendChild(td);
        });
      });
      box.appendChild(table);
    }

    if (tabs.length) activate(tabs[0]);
  }

  /* ---------- run page: the sample viewer ---------- */

  function initRun() {
    each(document.querySelectorAll("table.sortable"), makeSortable);
    var data = readData("sample-data");
    if (!data) return;
    var rows = data.rows, grans = data.granularities, pageSize = 50, page = 0, list = rows;
    var multiTask = !!$("s-task");
    var controls = ["s-task", "s-search", "s-scene", "s-status", "s-correct", "s-granularity"];
    rows.forEach(function (r) {
      r._hay = (r.id + "\n" + (r.output || "") + "\n" + (r.error || "") + "\n" + (r.scene || "")).toLowerCase();
    });

    function value(id) { return $(id) ? $(id).value : ""; }
    function isHit(r, g) { return ((r.hits >> g) & 1) === 1; }

    function filter() {
      var words = value("s-search").trim().toLowerCase().split(/\s+/).filter(Boolean);
      var task = value("s-task"), scene = value("s-scene"), status = value("s-status");
      var correct = value("s-correct"), g = Number(value("s-granularity"));
      list = rows.filter(function (r) {
        if (task && r.task !== task) return false;
        if (scene && r.scene !== scene) return false;
        if (status && r.status !== status) return false;
        if (correct !== "") {
          if (r.status === "error") return false; // no answer, not scored
          if (isHit(r, g) !== (correct === "1")) return false;
        }
        return words.every(function (w) { return r._hay.indexOf(w) !== -1; });
      });
      page = 0;
      render();
    }

    function render() {
      var body = $("sample-table").tBodies[0], g = Number(value("s-granularity"));
      body.textContent = "";
      var pages = Math.max(1, Math.ceil(list.length / pageSize));
      page = Math.min(page, pages - 1);
      list.slice(page * pageSize, (page + 1) * pageSize).forEach(function (r) {
        var tr = body.insertRow();
        tr.tabIndex = 0;
        tr.className = "sample-row";
        tr.setAttribute("data-id", r.id);
        tr.appendChild(el("td", r.id, "txt mono"));
        if (multiTask) tr.appendChild(el("td", r.task, "txt"));
        tr.appendChild(el("td", r.scene || "—", "txt"));
        tr.appendChild(el("td", r.status, "txt status status-" + (/^[a-z_]+$/.test(r.status) ? r.status : "other")));
        tr.appendChild(el("td", r.d === null ? "—" : km(r.d).replace(" km", ""), "num"));
        var hit = r.status === "error" ? "—" : isHit(r, g) ? "✓" : "✗";
        tr.appendChild(el("td", hit, "num " + (hit === "✓" ? "hit" : "miss")));
        tr.addEventListener("click", function () { open(r, tr); });
        tr.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(r, tr); } });
      });
      if (!list.length) {
        var td = body.insertRow().insertCell();
        td.colSpan = 6; td.className = "muted"; td.textContent = "No sample matches.";
      }
      $("s-count").textContent = list.length + " of " + rows.length + " samples";
      $("s-page").textContent = "page " + (page + 1) + " of " + pages;
      $("s-prev").disabled = page === 0;
      $("s-next").disabled = page >= pages - 1;
    }

    function point(cls, lat, lon, label) {
      var c = document.createElementNS(SVG_NS, "circle");
      c.setAttribute("cx", String((lon + 180) * 2));
      c.setAttribute("cy", String((90 - lat) * 2));
      c.setAttribute("r", "5");
      c.setAttribute("class", cls);
      var t = document.createElementNS(SVG_NS, "title");
      t.textContent = label;
      c.appendChild(t);
      return c;
    }

    function open(r, tr) {
      each(document.querySelectorAll(".sample-row.selected"), function (n) { n.classList.remove("selected"); });
      if (tr) tr.classList.add("selected");
      $("sample-detail").hidden = false;
      $("d-title").textContent = r.id + (multiTask ? "  ·  " + r.task : "");
      var img = $("d-thumb");
      if (r.thumb) { img.src = r.thumb; img.hidden = false; $("d-nothumb").hidden = true; }
      else { img.removeAttribute("src"); img.hidden = true; $("d-nothumb").hidden = false; }
      $("d-status").textContent = r.status;
      $("d-scene").textContent = r.scene || "—";
      $("d-truth").textContent = coord(r.gt_lat, r.gt_lon);
      $("d-parsed").textContent = coord(r.lat, r.lon);
      $("d-distance").textContent = km(r.d);
      var within = grans.filter(function (_, g) { return isHit(r, g); }).map(function (gr) { return gr[2]; });
      $("d-hits").textContent = r.status === "error" ? "not scored" : within.length ? within.join(", ") : "none";
      $("d-error").textContent = r.error || "—";
      $("d-output").textContent = r.output === null || r.output === undefined ? "(no output)" : r.output;
      var marks = $("d-marks");
      marks.textContent = "";
      var hasTruth = r.gt_lat !== null && r.gt_lon !== null, hasPred = r.lat !== null && r.lon !== null;
      if (hasTruth && hasPred) {
        var line = document.createElementNS(SVG_NS, "line");
        line.setAttribute("x1", String((r.gt_lon + 180) * 2)); line.setAttribute("y1", String((90 - r.gt_lat) * 2));
        line.setAttribute("x2", String((r.lon + 180) * 2)); line.setAttribute("y2", String((90 - r.lat) * 2));
        line.setAttribute("class", "link");
        marks.appendChild(line);
      }
      if (hasTruth) marks.appendChild(point("truth", r.gt_lat, r.gt_lon, "truth " + coord(r.gt_lat, r.gt_lon)));
      if (hasPred) marks.appendChild(point("pred", r.lat, r.lon, "prediction " + coord(r.lat, r.lon)));
      if (history.replaceState) history.replaceState(null, "", "#sample=" + encodeURIComponent(r.task + "/" + r.id));
    }

    controls.forEach(function (id) {
      if (!$(id)) return;
      $(id).addEventListener(id === "s-search" ? "input" : "change", filter);
    });
    $("s-prev").addEventListener("click", function () { page -= 1; render(); });
    $("s-next").addEventListener("click", function () { page += 1; render(); });
    $("d-close").addEventListener("click", function () {
      $("sample-detail").hidden = true;
      each(document.querySelectorAll(".sample-row.selected"), function (n) { n.classList.remove("selected"); });
    });
    filter();

    var m = /^#sample=(.*)$/.exec(location.hash);
    if (m) {
      var want = decodeURIComponent(m[1]);
      var found = rows.filter(function (r) { return r.task + "/" + r.id === want; })[0];
      if (found) open(found, null);
    }
  }

  if (document.body.getAttribute("data-page") === "index") initIndex();
  else if (document.body.getAttribute("data-page") === "run") initRun();
})();
