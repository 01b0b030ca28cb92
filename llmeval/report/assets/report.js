// llmeval report: the case table (filter, search, sort, pages, expandable rows).
// Every text from the run goes through textContent, never innerHTML: a "<script>" in an
// output is shown as text, never run.
// The data comes packed (gzip, then the 64-letter alphabet atob reads) and is unpacked by the
// browser's DecompressionStream; nothing is fetched. The summary above is plain HTML either way.
// Two parts: the table's data, drawn first, then X, the texts only details and tooltips show
// (contexts, reasons, claims, baseline outputs), unpacked once the first page is on screen.
(function () {
  "use strict";
  function bytesOf(text) {
    if (Uint8Array.fromBase64) return Uint8Array.fromBase64(text);
    var bin = atob(text), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function note(text) {
    var p = document.createElement("p");
    p.className = "count errtext";
    p.textContent = text + " results.jsonl has every result.";
    var count = document.getElementById("count");
    count.parentNode.insertBefore(p, count);
  }
  function unavailable(why) {
    note("The case table could not be shown: " + why);
    document.getElementById("controls").style.display = "none";
    document.body.setAttribute("data-ready", "error");
  }

  if (typeof DecompressionStream === "undefined" || typeof Response === "undefined" || !Blob.prototype.stream) {
    unavailable("this browser cannot unpack it (it needs DecompressionStream: Chrome 80, Firefox 113, " +
                "Safari 16.4 or newer).");
    return;
  }
  function unpack(id) {
    var text = document.getElementById(id).textContent.trim();
    return new Response(new Blob([bytesOf(text)]).stream().pipeThrough(new DecompressionStream("gzip"))).json();
  }
  unpack("llmeval-data").then(function (D) {
    window.llmevalDecodeMs = performance.now();
    var withDetails = table(D);
    // After the first paint: the table can be read while the details are unpacked.
    requestAnimationFrame(function () {
      setTimeout(function () {
        unpack("llmeval-details").then(function (X) {
          withDetails(X);
          document.body.setAttribute("data-details", "1");
          window.llmevalDetailsMs = performance.now();
        }, function (err) { note("Contexts and reasons could not be unpacked (" + err + ")."); });
      }, 0);
    });
  }, function (err) { unavailable("its data could not be unpacked (" + err + ")."); });

  function table(D) {
    var T = D.T, K = D.keys, TG = D.targets, ROWS = D.rows, THR = D.thr;
    var X = null;  // the details' texts, once unpacked
    var x = function (i) { return X ? X[i] : "…"; };
    var S = { failed: false, errored: false, regressed: false, tag: "", q: "", sort: "id", dir: 1, page: 0, size: 50 };
    var opened = Object.create(null);
    var $ = function (id) { return document.getElementById(id); };

    ROWS.forEach(function (r, i) {
      r._n = i;
      r._fails = 0; r._err = false; r._reg = false;
      r.c.forEach(function (c) {
        if (!c) return;
        if (!c.p) r._fails++;
        if (c.er !== undefined || c.me) r._err = true;
        if (c.ch === "r") r._reg = true;
      });
    });

    function hay(r) {
      if (r._h === undefined) {
        var parts = [r.i, r.in, r.ex];
        r.c.forEach(function (c) {
          if (!c) return;
          parts.push(c.o || "");
          if (c.tc) parts.push(c.tc.join("\n"));
          if (c.er !== undefined) parts.push(T[c.er]);
        });
        if (r.ms) r.ms.forEach(function (m) { parts.push(m[1]); });
        r._h = parts.join("\n").toLowerCase();
      }
      return r._h;
    }

    function el(tag, cls, text) {
      var n = document.createElement(tag);
      if (cls) n.className = cls;
      if (text !== undefined && text !== null) n.textContent = String(text);
      return n;
    }
    function add(parent) {
      for (var i = 1; i < arguments.length; i++) if (arguments[i]) parent.appendChild(arguments[i]);
      return parent;
    }
    function clip(s, n) { s = s || ""; return s.length > n ? s.slice(0, n - 1) + "…" : s; }
    function fmt(v) { return v === null || v === undefined ? "–" : (+v).toFixed(3); }

    // Sort keys: case, input, failing targets, and per target pass/latency/each metric/delta.
    var SORTS = [
      { id: "id", label: "case id", key: function (r) { return r.i; } },
      { id: "input", label: "input", key: function (r) { return r.in; } },
      { id: "expected", label: "expected", key: function (r) { return r.ex; } },
      { id: "fails", label: "failing targets", key: function (r) { return r._fails; } }
    ];
    if (D.epochs) SORTS.splice(1, 0, { id: "epoch", label: "epoch", key: function (r) { return r.ep || 0; } });
    // The fixed columns before the targets': #, case, (epoch,) input, expected.
    var FIXED = [["#", null], ["case", "id"]].concat(D.epochs ? [["epoch", "epoch"]] : [])
      .concat([["input", "input"], ["expected", "expected"]]);
    TG.forEach(function (t, ti) {
      var cell = function (r) { return r.c[ti]; };
      SORTS.push({ id: "p" + ti, label: t + ": pass/fail", key: function (r) { var c = cell(r); return c ? c.p : null; } });
      SORTS.push({ id: "l" + ti, label: t + ": latency", key: function (r) { var c = cell(r); return c && c.l !== undefined ? c.l : null; } });
      K.forEach(function (k, ki) {
        SORTS.push({ id: "s" + ti + "_" + ki, label: t + ": " + k, key: function (r) {
          var c = cell(r); var s = c && c.s ? c.s[ki] : null; return s ? s[0] : null; } });
      });
      if (D.baseline) {
        SORTS.push({ id: "d" + ti, label: t + ": Δ vs baseline", key: function (r) {
          var c = cell(r); return c && c.dv !== undefined ? c.dv : null; } });
      }
    });
    var SORT_BY = Object.create(null);
    SORTS.forEach(function (s) { SORT_BY[s.id] = s; });

    var memo = { key: null, rows: null };
    function filtered() {
      var key = [S.failed, S.errored, S.regressed, S.tag, S.q, S.sort, S.dir].join("\u0000");
      if (memo.key !== key) { memo.rows = select(); memo.key = key; }
      return memo.rows;
    }

    function select() {
      var q = S.q.toLowerCase();
      var tag = S.tag === "" ? -1 : +S.tag;
      var out = ROWS.filter(function (r) {
        if (S.failed && !r._fails) return false;
        if (S.errored && !r._err) return false;
        if (S.regressed && !r._reg) return false;
        if (tag >= 0 && !(r.tg && r.tg.indexOf(tag) >= 0)) return false;
        if (q && hay(r).indexOf(q) < 0) return false;
        return true;
      });
      var key = SORT_BY[S.sort].key, dir = S.dir;
      out.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null || x === undefined) return (y === null || y === undefined) ? a._n - b._n : 1;  // missing last
        if (y === null || y === undefined) return -1;
        if (x < y) return -dir;
        if (x > y) return dir;
        return a._n - b._n;
      });
      return out;
    }

    function status(c) {
      if (!c) return el("span", "st", "—");
      if (c.er !== undefined) return el("span", "st err", "ERROR");
      if (c.me) return el("span", "st err", c.me === 1 ? "METRIC ERROR" : c.me + " METRIC ERRORS");
      return el("span", "st " + (c.p ? "pass" : "fail"), c.p ? "PASS" : "FAIL");
    }

    function chip(ki, s) {
      var v = s[0], p = s[1], failed = s.length > 3 && s[3] === 1;
      var cls = failed ? "err" : (v === null ? "na" : (p === 1 ? "pass" : (p === 0 ? "fail" : "info")));
      var n = el("span", "chip " + cls, K[ki] + " " + (failed ? "error" : (v === null ? "n/a" : fmt(v))));
      var tip = THR[ki] !== null && THR[ki] !== undefined ? "threshold " + THR[ki] : "no threshold";
      if (s.length > 2 && X) tip += "\n" + X[s[2]];
      n.title = tip;
      return n;
    }

    function header() {
      var table = $("case-table");
      table.textContent = "";
      var cg = el("colgroup");
      add(cg, el("col", "c-idx"), el("col", "c-id"));
      if (D.epochs) cg.appendChild(el("col", "c-ep"));
      add(cg, el("col", "c-in"), el("col", "c-ex"));
      TG.forEach(function () { add(cg, el("col", "c-t")); });
      table.appendChild(cg);
      var tr = el("tr");
      var cols = FIXED.slice();
      TG.forEach(function (t, ti) { cols.push([t, "p" + ti]); });
      cols.forEach(function (c) {
        var th = el("th", c[1] ? "sortable" + (S.sort === c[1] ? " sorted" : "") : "", c[0]);
        if (c[1]) {
          th.title = "sort by " + c[0];
          th.addEventListener("click", function () { setSort(c[1]); });
        }
        tr.appendChild(th);
      });
      add(table, add(el("thead"), tr), el("tbody"));
    }

    function setSort(id) {
      if (S.sort === id) S.dir = -S.dir; else { S.sort = id; S.dir = 1; }
      $("f-sort").value = id;
      $("f-dir").textContent = S.dir > 0 ? "↑" : "↓";
      S.page = 0;
      render();
    }

    function rowEl(r, idx) {
      var tr = el("tr", "row" + (opened[r._n] ? " open" : ""));
      tr.tabIndex = 0;
      var idCell = el("td");
      add(idCell, el("code", null, r.i));
      if (r.tg) {
        var tags = el("div");
        r.tg.forEach(function (t) { tags.appendChild(el("span", "tag", T[t])); });
        idCell.appendChild(tags);
      }
      add(tr, el("td", "num", idx + 1), idCell);
      if (D.epochs) tr.appendChild(el("td", "num", r.ep || 0));
      add(tr, el("td", null, (r.ms ? "💬 " + r.ms.length + " messages · " : "") + clip(r.in, 200)), el("td", null, clip(r.ex, 200)));
      r.c.forEach(function (c) {
        var td = el("td");
        var head = add(el("div"), status(c));
        if (c && c.ch) head.appendChild(el("span", "arrow " + c.ch, c.ch === "r" ? "▼ regressed" : "▲ improved"));
        td.appendChild(head);
        if (c) {
          if (c.er !== undefined) td.appendChild(el("div", "out errtext", clip(T[c.er], 240)));
          else td.appendChild(el("div", "out", clip(c.o, 240)));
          if (c.tc) c.tc.forEach(function (x) { td.appendChild(el("div", "out calls", "→ " + clip(x, 240))); });
          if (c.s) {
            var chips = el("div", "chips");
            c.s.forEach(function (s, ki) { if (s) chips.appendChild(chip(ki, s)); });
            td.appendChild(chips);
          }
        }
        tr.appendChild(td);
      });
      var toggle = function () { if (opened[r._n]) delete opened[r._n]; else opened[r._n] = 1; render(); };
      tr.addEventListener("click", toggle);
      tr.addEventListener("keydown", function (ev) { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); toggle(); } });
      return tr;
    }

    function detailEl(r) {
      var tr = el("tr", "detailrow");
      var td = el("td", "detail");
      td.colSpan = FIXED.length + TG.length;
      if (r.ms) {
        var conv = el("ol", "conversation");
        r.ms.forEach(function (m) { conv.appendChild(add(el("li", "msg " + T[m[0]]), el("b", null, T[m[0]] + ": "), el("pre", null, m[1]))); });
        add(td, el("h4", null, "Conversation (the messages before the answer)"), conv);
      }
      add(td, el("h4", null, "Input"), el("pre", null, r.in), el("h4", null, "Expected"), el("pre", null, r.ex || "—"));
      var grid = el("div", "dgrid");
      r.c.forEach(function (c, ti) {
        var b = add(el("div", "dblock"), add(el("h4", null, TG[ti] + " "), status(c)));
        if (!c) { grid.appendChild(b); return; }
        if (c.er !== undefined) add(b, el("div", "errtext", "Error"), el("pre", null, T[c.er]));
        add(b, el("div", null, "Output" + (c.l !== undefined ? " (" + c.l + " ms)" : "")), el("pre", null, c.o === null ? "(none)" : c.o));
        if (c.tc) add(b, el("div", null, "Tool calls (" + c.tc.length + ")"), el("pre", "calls", c.tc.join("\n")));
        if (c.s) {
          var st = el("table", "scores");
          add(st, add(el("tr"), el("th", null, "metric"), el("th", null, "value"), el("th", null, "threshold"), el("th", null, "reason")));
          c.s.forEach(function (s, ki) {
            if (!s) return;
            var th = THR[ki];
            var failed = s.length > 3 && s[3] === 1;
            add(st, add(el("tr"), add(el("td"), chip(ki, s)),
              el("td", failed ? "num errtext" : "num", failed ? "error" : (s[0] === null ? "null" : s[0])),
              el("td", "num", th === null || th === undefined ? "—" : th), el("td", null, s.length > 2 ? x(s[2]) : "")));
          });
          b.appendChild(st);
        }
        if (c.u) {
          var ul = el("ul");
          c.u.forEach(function (u) { ul.appendChild(el("li", null, x(u))); });
          add(b, el("div", "errtext", "Unsupported claims"), ul);
        }
        if (c.cx) {
          var det = add(el("details"), el("summary", null, "Retrieved contexts (" + c.cx.length + ")"));
          var ol = el("ol");
          c.cx.forEach(function (i) { ol.appendChild(add(el("li"), el("pre", null, x(i)))); });
          add(b, add(det, ol));
        }
        if (c.bo !== undefined || c.bp !== undefined) {
          var base = c.bp === undefined ? "" : (c.bp ? " (passed)" : " (failed)");
          add(b, el("div", null, "Baseline output" + base + (c.dv !== undefined ? ", Δ mean " + fmt(c.dv) : "")),
            el("pre", null, c.bo !== undefined ? (x(c.bo) === "" ? "(none)" : x(c.bo)) : "(same as candidate)"));
        }
        grid.appendChild(b);
      });
      td.appendChild(grid);
      tr.appendChild(td);
      return tr;
    }

    function render() {
      var rows = filtered();
      var pages = Math.max(1, Math.ceil(rows.length / S.size));
      S.page = Math.min(S.page, pages - 1);
      var start = S.page * S.size, end = Math.min(rows.length, start + S.size);
      var body = document.createElement("tbody");
      for (var i = start; i < end; i++) {
        body.appendChild(rowEl(rows[i], i));
        if (opened[rows[i]._n]) body.appendChild(detailEl(rows[i]));
      }
      var table = $("case-table");
      table.replaceChild(body, table.tBodies[0]);
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
        var ids = FIXED.map(function (c) { return c[1]; }).concat(TG.map(function (_, ti) { return "p" + ti; }));
        th.classList.toggle("sorted", ids[i] === S.sort);
      });
      $("count").textContent = rows.length
        ? "Showing " + (start + 1) + "–" + end + " of " + rows.length + " rows" + (rows.length < ROWS.length ? " (filtered from " + ROWS.length + ")" : "")
        : "No rows match (of " + ROWS.length + ").";
      var pager = $("pager");
      pager.textContent = "";
      var prev = el("button", null, "‹ prev"), next = el("button", null, "next ›");
      prev.type = next.type = "button";
      prev.disabled = S.page === 0; next.disabled = S.page >= pages - 1;
      prev.addEventListener("click", function () { S.page--; render(); });
      next.addEventListener("click", function () { S.page++; render(); });
      add(pager, prev, el("span", null, "page " + (S.page + 1) + " of " + pages), next);
    }

    function init() {
      var sortSel = $("f-sort");
      SORTS.forEach(function (s) { var o = el("option", null, s.label); o.value = s.id; sortSel.appendChild(o); });
      var tagSel = $("f-tag"), seen = Object.create(null);
      ROWS.forEach(function (r) { (r.tg || []).forEach(function (t) { seen[t] = 1; }); });
      Object.keys(seen).map(Number).sort(function (a, b) { return T[a] < T[b] ? -1 : 1; }).forEach(function (t) {
        var o = el("option", null, T[t]); o.value = String(t); tagSel.appendChild(o);
      });
      var on = function (id, ev, fn) { var n = $(id); if (n) n.addEventListener(ev, fn); };
      ["failed", "errored", "regressed"].forEach(function (f) {
        on("f-" + f, "change", function (ev) { S[f] = ev.target.checked; S.page = 0; render(); });
      });
      on("f-tag", "change", function (ev) { S.tag = ev.target.value; S.page = 0; render(); });
      var timer = null;
      on("f-search", "input", function (ev) {
        clearTimeout(timer);
        timer = setTimeout(function () { S.q = ev.target.value; S.page = 0; render(); }, 120);
      });
      on("f-sort", "change", function (ev) { S.sort = ev.target.value; S.page = 0; render(); });
      on("f-dir", "click", function () { setSort(S.sort); });
      on("f-size", "change", function (ev) { S.size = +ev.target.value; S.page = 0; render(); });
      header();
      render();
      document.body.setAttribute("data-ready", "1");
      window.llmevalRenderMs = performance.now();
    }
    init();
    return function (texts) { X = texts; render(); };
  }
})();
