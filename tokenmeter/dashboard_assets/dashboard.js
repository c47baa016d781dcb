/* tokenmeter dashboard: hand-written SVG charts. No network, no libraries; every string from the
   data is inserted with textContent or setAttribute, never as markup. */
(function () {
  'use strict';
  var root = document.documentElement;
  window.addEventListener('error', function (e) {
    root.setAttribute('data-js-error', String(e.message || e));
  });

  var DATA = JSON.parse(document.getElementById('tm-data').textContent);
  var CUR = DATA.currency || '';
  // the SVG namespace, taken from the parser so the file holds no URL at all
  var probe = document.createElement('div');
  probe.innerHTML = '<svg></svg>';
  var NS = probe.firstChild.namespaceURI;
  var PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7',
                 '#9c755f', '#bab0ac'];
  var KINDS = ['billed', 'logged', 'estimated', 'mixed', 'none'];
  var MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

  // -- formatting --------------------------------------------------------------------------------
  function fmtInt(n) { return n == null ? '\u2014' : Math.round(n).toLocaleString('en-US'); }
  function compact(n) {
    if (n == null) return '\u2014';
    var a = Math.abs(n);
    if (a >= 1e9) return trim(n / 1e9) + 'B';
    if (a >= 1e6) return trim(n / 1e6) + 'M';
    if (a >= 1e3) return trim(n / 1e3) + 'k';
    return trim(n);
  }
  function trim(x) { return String(parseFloat(x.toFixed(Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2))); }
  function money(n, cur) {
    if (n == null) return '\u2014';
    var a = Math.abs(n), d = a >= 1 || a === 0 ? 2 : a >= 0.01 ? 4 : 6;
    return n.toLocaleString('en-US', {minimumFractionDigits: 2, maximumFractionDigits: d}) + ' ' + (cur || CUR);
  }
  function moneyAxis(n) {
    var a = Math.abs(n);
    if (a >= 1000) return compact(n);
    return String(parseFloat(n.toFixed(a >= 1 ? 2 : a >= 0.01 ? 3 : 5)));
  }
  function pct(x) { return x > 0 && x < 0.001 ? '<0.1%' : (x * 100).toFixed(1) + '%'; }
  function dayLabel(iso) {
    var p = String(iso).split('-');
    return p.length === 3 ? MONTHS[parseInt(p[1], 10) - 1] + ' ' + parseInt(p[2], 10) : String(iso);
  }

  // -- svg helpers -------------------------------------------------------------------------------
  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) if (attrs[k] != null) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function text(parent, x, y, s, cls, anchor) {
    var t = el('text', {x: x, y: y, 'class': cls || null, 'text-anchor': anchor || null}, parent);
    t.textContent = s;
    return t;
  }
  function svgFor(box, w, h, label) {
    while (box.firstChild) box.removeChild(box.firstChild);
    return el('svg', {viewBox: '0 0 ' + w + ' ' + h, width: w, height: h, role: 'img', 'aria-label': label}, box);
  }
  function niceStep(max, count) {
    if (!(max > 0)) return 1;
    var raw = max / count, mag = Math.pow(10, Math.floor(Math.log10(raw))), r = raw / mag;
    return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 2.5 ? 2.5 : r <= 5 ? 5 : 10) * mag;
  }

  // -- tooltip -----------------------------------------------------------------------------------
  var tip = document.getElementById('tip');
  function showTip(evt, title, rows) {
    while (tip.firstChild) tip.removeChild(tip.firstChild);
    var t = document.createElement('div');
    t.className = 't';
    t.textContent = title;
    tip.appendChild(t);
    rows.forEach(function (r) {
      var line = document.createElement('div'), k = document.createElement('span'), v = document.createElement('b');
      line.className = 'r';
      k.textContent = r[0];
      v.textContent = r[1];
      line.appendChild(k);
      line.appendChild(v);
      tip.appendChild(line);
    });
    tip.hidden = false;
    var x = evt.clientX + 14, y = evt.clientY + 14, w = tip.offsetWidth, h = tip.offsetHeight;
    if (x + w > window.innerWidth - 8) x = Math.max(8, evt.clientX - w - 14);
    if (y + h > window.innerHeight - 8) y = Math.max(8, evt.clientY - h - 14);
    tip.style.left = x + 'px';
    tip.style.top = y + 'px';
  }
  function hideTip() { tip.hidden = true; }
  function hover(node, title, rows, onEnter, onLeave) {
    node.addEventListener('pointermove', function (e) { showTip(e, title, rows); if (onEnter) onEnter(); });
    node.addEventListener('pointerdown', function (e) { showTip(e, title, rows); if (onEnter) onEnter(); });
    node.addEventListener('pointerleave', function () { hideTip(); if (onLeave) onLeave(); });
  }

  // -- vertical bar chart (stacked), one band per day --------------------------------------------
  function barChart(box, opts) {
    var days = opts.days, n = days.length;
    var W = Math.max(280, box.clientWidth || 600), H = W < 500 ? 190 : 230;
    var m = {l: 48, r: 8, t: 10, b: 26}, pw = W - m.l - m.r, ph = H - m.t - m.b;
    var svg = svgFor(box, W, H, opts.label);
    svg.setAttribute('data-chart', opts.id);
    var max = 0;
    days.forEach(function (d) {
      var s = 0;
      opts.series.forEach(function (ser) { s += ser.value(d) || 0; });
      max = Math.max(max, s);
    });
    var step = niceStep(max, 4), top = Math.max(step, Math.ceil(max / step) * step);
    var g = el('g', {'class': 'grid'}, svg);
    for (var v = 0; v <= top + step / 2; v += step) {
      var y = m.t + ph - (v / top) * ph;
      el('line', {x1: m.l, x2: W - m.r, y1: y, y2: y}, g);
      text(svg, m.l - 6, y + 4, opts.axis(v), null, 'end');
    }
    el('line', {'class': 'axis', x1: m.l, x2: W - m.r, y1: m.t + ph, y2: m.t + ph}, svg);
    var band = pw / Math.max(n, 1), bw = Math.max(1, Math.min(48, band * 0.72));
    var every = Math.max(1, Math.ceil(58 / band));
    days.forEach(function (d, i) {
      var x0 = m.l + i * band, cx = x0 + band / 2;
      var hl = el('rect', {'class': 'band', x: x0, y: m.t, width: band, height: ph}, svg);
      var base = m.t + ph;
      opts.series.forEach(function (ser) {
        var val = ser.value(d);
        if (val == null) return;
        var h = top ? (val / top) * ph : 0;
        el('rect', {'class': 'bar ' + ser.cls(d), x: cx - bw / 2, y: base - h, width: bw, height: Math.max(0, h),
                    'data-date': d.date, 'data-series': ser.name, 'data-value': ser.raw(d),
                    'aria-label': d.date + ' ' + ser.name + ': ' + ser.fmt(val)}, svg);
        base -= h;
      });
      if (i % every === 0) text(svg, cx, H - 8, dayLabel(d.date), null, 'middle');
      var hit = el('rect', {x: x0, y: m.t, width: band, height: ph + m.b, fill: 'transparent'}, svg);
      hover(hit, d.date, opts.tip(d), function () { hl.setAttribute('class', 'band on'); },
            function () { hl.setAttribute('class', 'band'); });
    });
  }

  function dailyCharts() {
    var days = DATA.daily;
    var costBox = document.getElementById('chart-daily-cost'), tokBox = document.getElementById('chart-daily-tokens');
    if (!costBox || !tokBox || !days.length) return;
    function tipRows(d) {
      var rows = [['Cost', money(d.cost) + (d.cost_kind ? ' (' + d.cost_kind + ')' : '')]];
      var parts = KINDS.filter(function (k) { return d.by_kind[k]; });
      if (parts.length > 1) parts.forEach(function (k) { rows.push(['\u2003' + k, money(d.by_kind[k].v)]); });
      if (d.input != null) rows.push(['Input tokens', fmtInt(d.input)]);
      if (d.output != null) rows.push(['Output tokens', fmtInt(d.output)]);
      rows.push(['Total tokens', fmtInt(d.total)]);
      rows.push(['Requests', fmtInt(d.requests)]);
      if (d.unpriced) rows.push(['Unpriced requests', fmtInt(d.unpriced)]);
      return rows;
    }
    barChart(costBox, {
      id: 'daily-cost', days: days, label: 'Cost per day in ' + CUR, axis: moneyAxis, tip: tipRows,
      series: KINDS.filter(function (k) { return days.some(function (d) { return d.by_kind[k]; }); })
        .map(function (k) {
          return {name: 'cost ' + k, value: function (d) { return d.by_kind[k] ? d.by_kind[k].v : null; },
                  raw: function (d) { return d.by_kind[k] ? d.by_kind[k].s : null; },
                  cls: function () { return k; }, fmt: function (v) { return money(v); }};
        })
    });
    var split = days.some(function (d) { return d.input != null || d.output != null; });
    var series = split ? [
      {name: 'input', value: function (d) { return d.input; }, raw: function (d) { return d.input; },
       cls: function () { return 'input'; }, fmt: fmtInt},
      {name: 'output', value: function (d) { return d.output; }, raw: function (d) { return d.output; },
       cls: function () { return 'output'; }, fmt: fmtInt}
    ] : [
      {name: 'total', value: function (d) { return d.total; }, raw: function (d) { return d.total; },
       cls: function () { return 'unsplit'; }, fmt: fmtInt}
    ];
    barChart(tokBox, {id: 'daily-tokens', days: days, label: 'Tokens per day', axis: compact, tip: tipRows,
                      series: series});
  }

  // -- doughnut -------------------------------------------------------------------------------------
  function topN(items, key, n) {
    var sorted = items.filter(function (it) { return (it[key] || 0) > 0; })
      .sort(function (a, b) { return b[key] - a[key]; });
    if (sorted.length <= n) return sorted;
    var rest = sorted.slice(n - 1), other = {label: 'other (' + rest.length + ')', tokens: 0, cost: 0, requests: 0};
    rest.forEach(function (it) { other.tokens += it.tokens || 0; other.cost += it.cost || 0; other.requests += it.requests || 0; });
    return sorted.slice(0, n - 1).concat([other]);
  }
  function arc(cx, cy, r, r0, a0, a1) {
    var large = a1 - a0 > Math.PI ? 1 : 0;
    function p(rad, a) { return (cx + rad * Math.sin(a)).toFixed(2) + ' ' + (cy - rad * Math.cos(a)).toFixed(2); }
    return 'M' + p(r, a0) + ' A' + r + ' ' + r + ' 0 ' + large + ' 1 ' + p(r, a1) +
           ' L' + p(r0, a1) + ' A' + r0 + ' ' + r0 + ' 0 ' + large + ' 0 ' + p(r0, a0) + ' Z';
  }
  function donut(id, items, metric) {
    var box = document.getElementById('chart-' + id), legend = document.getElementById('legend-' + id);
    if (!box || !legend) return;
    var list = topN(items, metric, 8), total = 0;
    list.forEach(function (it) { total += it[metric]; });
    var fmt = metric === 'cost' ? function (v) { return money(v); } : fmtInt;
    var S = 190, c = S / 2, r = 90, r0 = 56;
    var svg = svgFor(box, S, S, 'Share by ' + id.replace('share-', '') + ' (' + metric + ')');
    svg.setAttribute('data-chart', id);
    svg.setAttribute('data-metric', metric);
    while (legend.firstChild) legend.removeChild(legend.firstChild);
    if (!total) {
      el('circle', {cx: c, cy: c, r: (r + r0) / 2, fill: 'none', stroke: 'currentColor', 'stroke-opacity': 0.15,
                    'stroke-width': r - r0}, svg);
      text(svg, c, c + 5, 'no ' + metric, 'center-big', 'middle');
      return;
    }
    var a = 0;
    list.forEach(function (it, i) {
      var share = it[metric] / total, a1 = a + share * 2 * Math.PI, color = PALETTE[i % PALETTE.length];
      var attrs = {'class': 'slice', fill: color, 'data-label': it.label, 'data-value': it[metric],
                   'aria-label': it.label + ': ' + fmt(it[metric]) + ' (' + pct(share) + ')'};
      var node;
      if (share >= 0.9999) {
        attrs.d = arc(c, c, r, r0, 0, Math.PI) + ' ' + arc(c, c, r, r0, Math.PI, 2 * Math.PI);
      } else {
        attrs.d = arc(c, c, r, r0, a, a1);
      }
      node = el('path', attrs, svg);
      var rows = [[metric === 'cost' ? 'Cost' : 'Tokens', fmt(it[metric])], ['Share', pct(share)]];
      if (metric === 'cost') rows.push(['Tokens', fmtInt(it.tokens)]); else rows.push(['Cost', money(it.cost)]);
      rows.push(['Requests', fmtInt(it.requests)]);
      if (it.provider) rows.push(['Provider', it.provider]);
      if (it.cost_kind) rows.push(['Cost kind', it.cost_kind]);
      hover(node, it.label, rows);
      a = a1;
      var li = document.createElement('li'), sw = document.createElement('span'), nm = document.createElement('span'),
          val = document.createElement('span'), pc = document.createElement('span');
      sw.className = 'swatch';
      sw.style.background = color;
      nm.className = 'lname';
      nm.textContent = it.label;
      nm.title = it.label;
      val.className = 'lval';
      val.textContent = metric === 'cost' ? money(it.cost) : compact(it.tokens);
      pc.className = 'lpct';
      pc.textContent = pct(share);
      [sw, nm, val, pc].forEach(function (x) { li.appendChild(x); });
      hover(li, it.label, rows, function () { node.setAttribute('class', 'slice on'); },
            function () { node.setAttribute('class', 'slice'); });
      legend.appendChild(li);
    });
    text(svg, c, c + 2, metric === 'cost' ? moneyAxis(total) : compact(total), 'center-big', 'middle');
    text(svg, c, c + 18, metric === 'cost' ? CUR : 'tokens', null, 'middle');
  }

  // -- horizontal bars: cost by model ---------------------------------------------------------------
  function costByModel() {
    var box = document.getElementById('chart-cost-model');
    if (!box) return;
    var items = DATA.by_model.filter(function (it) { return it.cost != null && it.cost > 0; })
      .sort(function (a, b) { return b.cost - a.cost; }).slice(0, 15);
    if (!items.length) return;
    var W = Math.max(280, box.clientWidth || 600), row = 26, H = items.length * row + 8;
    var lw = Math.min(Math.round(W * 0.38), 220), vw = 92, pw = W - lw - vw - 12;
    var svg = svgFor(box, W, H, 'Cost by model in ' + CUR);
    svg.setAttribute('data-chart', 'cost-model');
    var max = items[0].cost, chars = Math.floor(lw / 6.6);
    items.forEach(function (it, i) {
      var y = 4 + i * row, w = Math.max(2, (it.cost / max) * pw);
      var name = it.label.length > chars ? it.label.slice(0, chars - 1) + '\u2026' : it.label;
      text(svg, lw - 8, y + 16, name, 'lbl', 'end');
      el('rect', {'class': 'bar ' + (it.cost_kind || 'none'), x: lw, y: y + 4, width: w, height: row - 9, rx: 3,
                  'data-label': it.label, 'data-value': it.cost_s,
                  'aria-label': it.label + ': ' + money(it.cost)}, svg);
      text(svg, lw + w + 6, y + 16, money(it.cost), 'val');
      var hit = el('rect', {x: 0, y: y, width: W, height: row, fill: 'transparent'}, svg);
      var rows = [['Cost', money(it.cost) + (it.cost_kind ? ' (' + it.cost_kind + ')' : '')],
                  ['Tokens', fmtInt(it.tokens)], ['Requests', fmtInt(it.requests)]];
      if (it.provider) rows.push(['Provider', it.provider]);
      hover(hit, it.label, rows);
    });
  }

  // -- segmented metric switches and sortable tables ------------------------------------------------
  var metrics = {'share-model': 'tokens', 'share-provider': 'tokens'};
  function donuts() {
    donut('share-model', DATA.by_model, metrics['share-model']);
    donut('share-provider', DATA.by_provider, metrics['share-provider']);
  }
  Array.prototype.forEach.call(document.querySelectorAll('.seg[data-for]'), function (seg) {
    seg.addEventListener('click', function (e) {
      var b = e.target.closest('button');
      if (!b) return;
      metrics[seg.getAttribute('data-for')] = b.getAttribute('data-metric');
      Array.prototype.forEach.call(seg.querySelectorAll('button'), function (x) {
        x.setAttribute('aria-pressed', String(x === b));
      });
      donuts();
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
    Array.prototype.forEach.call(table.querySelectorAll('thead th'), function (th, col) {
      th.classList.add('sortable');
      th.addEventListener('click', function () {
        var asc = th.getAttribute('aria-sort') !== 'ascending', body = table.tBodies[0];
        Array.prototype.forEach.call(table.querySelectorAll('thead th'), function (x) { x.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col].getAttribute('data-sort'), y = b.cells[col].getAttribute('data-sort');
          var nx = parseFloat(x), ny = parseFloat(y), r;
          if (x !== null && y !== null && !isNaN(nx) && !isNaN(ny)) r = nx - ny;
          else r = a.cells[col].textContent.localeCompare(b.cells[col].textContent);
          return asc ? r : -r;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });

  function renderAll() { dailyCharts(); donuts(); costByModel(); }
  renderAll();
  // charts are drawn at the width of their box: draw again when the page width changes
  var wrap = document.querySelector('.wrap'), lastW = wrap.clientWidth, timer = null;
  function resized() {
    if (wrap.clientWidth === lastW) return;
    lastW = wrap.clientWidth;
    clearTimeout(timer);
    timer = setTimeout(function () { renderAll(); selfCheck(); }, 80);
  }
  if (window.ResizeObserver) new ResizeObserver(resized).observe(wrap);
  window.addEventListener('resize', resized);

  // -- self-check: anything fetched or blocked would show here (the browser test reads these) -------
  function selfCheck() {
    var loads = performance.getEntriesByType('resource').map(function (r) { return r.name; });
    root.setAttribute('data-resource-loads', String(loads.length));
    if (loads.length) root.setAttribute('data-resource-urls', loads.join(' '));
    root.setAttribute('data-rendered', String(document.querySelectorAll('svg[data-chart]').length));
    root.setAttribute('data-page-height', String(document.documentElement.scrollHeight));
  }
  selfCheck();
  window.addEventListener('load', selfCheck);
})();
