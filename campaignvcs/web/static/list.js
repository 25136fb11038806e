// camp web, exported site: filter, sort and page the dataset list in the browser.
// The rows come from idx/N.js chunks (loaded with <script>, which works from file://);
// every value is put into the page with textContent, never as HTML.
(function () {
  "use strict";
  var form = document.getElementById("filter");
  if (!form || form.dataset.static !== "yes") { return; }
  var params = new URLSearchParams(window.location.search);
  var query = {};
  ["q", "kind", "host", "sort", "order"].forEach(function (k) { query[k] = params.get(k) || ""; });
  var page = parseInt((window.location.pathname.match(/(\d+)\.html$/) || [0, "1"])[1], 10) || 1;
  if (!query.q && !query.kind && !query.host && (!query.sort || query.sort === "name") && query.order !== "desc") {
    return;  // the pre-rendered page is this query's answer
  }
  var chunks = parseInt(form.dataset.chunks, 10);
  var root = form.dataset.root;
  var size = parseInt(form.dataset.pageSize, 10);
  var rows = [];
  var loaded = 0;
  var columns = {name: 0, kind: 1, hosts: 2, size: 3, mtime: 4};
  window.campIndex = function (n, part) {
    rows.push.apply(rows, part);
    loaded += 1;
    if (loaded === chunks) { show(); } else { load(loaded); }
  };
  function load(n) {
    var s = document.createElement("script");
    s.src = root + "idx/" + n + ".js";
    document.body.appendChild(s);
  }
  function fmtSize(n) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"], v = n, i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return i === 0 ? v + " B" : v.toFixed(1) + " " + units[i];
  }
  function fmtTime(ns) {
    return ns ? new Date(ns / 1e6).toISOString().replace(/\.\d+Z$/, "Z") : "-";
  }
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    tr.appendChild(td);
    return td;
  }
  function link(text, href) {
    var a = document.createElement("a");
    a.textContent = text;
    a.href = href;
    return a;
  }
  function show() {
    var needle = query.q.toLowerCase(), kind = query.kind.toUpperCase(), host = query.host;
    var hits = rows.filter(function (r) {
      return (!needle || r[0].toLowerCase().indexOf(needle) >= 0) && (!kind || r[1] === kind) &&
        (!host || r[2].split(", ").indexOf(host) >= 0);
    });
    var col = columns[query.sort] === undefined ? 0 : columns[query.sort];
    hits.sort(function (a, b) {
      var x = a[col], y = b[col];
      if (x < y) { return -1; }
      if (x > y) { return 1; }
      return a[0] < b[0] ? -1 : (a[0] > b[0] ? 1 : 0);
    });
    if (query.order === "desc") { hits.reverse(); }
    var pages = Math.max(1, Math.ceil(hits.length / size));
    var p = Math.min(page, pages);
    var tbody = document.querySelector("#datasets tbody");
    tbody.textContent = "";
    hits.slice((p - 1) * size, p * size).forEach(function (r) {
      var tr = document.createElement("tr");
      var name = cell(tr, "");
      name.appendChild(link(r[0], root + "d/" + r[5] + ".html"));
      cell(tr, r[1]);
      cell(tr, r[2]);
      cell(tr, String(r[7]), "num");
      cell(tr, fmtSize(r[3]), "num");
      cell(tr, fmtTime(r[4]));
      if (r[6] !== "live") { tr.className = "deleted"; }
      tbody.appendChild(tr);
    });
    var summary = document.getElementById("summary");
    summary.textContent = hits.length + (hits.length === 1 ? " dataset" : " datasets") + " of " + rows.length +
      " · page " + p + " of " + pages;
    var pager = document.getElementById("pager");
    pager.textContent = "";
    var search = window.location.search;
    if (p > 1) { pager.appendChild(link("\u2190 previous", (p - 1) + ".html" + search)); }
    if (p < pages) { pager.appendChild(link("next \u2192", (p + 1) + ".html" + search)); }
    document.body.dataset.listReady = "yes";
  }
  load(0);
})();
