// The review page: a grid of one group's images, driven by the keyboard.
// Every action goes to the server at once; actions run one after another
// (a queue), so fast typing never labels the wrong image.
"use strict";

const COLOURS = ["#2e7d32", "#1565c0", "#6a1b9a", "#ef6c00", "#00838f", "#ad1457",
                 "#558b2f", "#4e342e", "#37474f", "#c62828"];
const UNSURE = "unsure";
// Keys that move or act; a class whose initial is one of these has its digit only.
const RESERVED = new Set(["h", "j", "k", "l", "x", "u", "n", "p", "t"]);

const S = {classes: [], labels: [], groups: [], kind: "", group: 0, order: "desc", page: 0,
           pages: 1, items: [], focus: 0, pageSize: 60, digitOf: {}, initialOf: {}};
const $ = (id) => document.getElementById(id);

// Every piece of data (class, cluster and file names, descriptions, paths) is
// untrusted text: it enters the page only as text nodes and property values,
// never as HTML. `el` is the one way this page builds elements.
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "style") Object.assign(node.style, v);        // CSSOM: allowed by the CSP
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "className") node.className = v;
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== "") node.append(c);
  return node;
}
const kbd = (key) => el("kbd", {}, key);

// ---- server ---------------------------------------------------------------------------
async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

let queue = Promise.resolve();
let pending = 0;
function run(work) {           // one action at a time, in key order
  pending += 1;
  document.body.dataset.busy = "1";
  queue = queue.then(work).catch((err) => say(err.message, true)).finally(() => {
    pending -= 1;
    if (!pending) document.body.dataset.busy = "0";
  });
}

let sayTimer = null;
function say(text, error = false) {
  const box = $("status");
  box.textContent = text;
  box.className = "show" + (error ? " error" : "");
  clearTimeout(sayTimer);
  sayTimer = setTimeout(() => { box.className = ""; }, error ? 6000 : 2500);
}

// ---- keys and classes -------------------------------------------------------------------
function colour(label) {
  if (label === UNSURE) return "#777";
  const i = S.classes.indexOf(label);
  return i < 0 ? "#999" : COLOURS[i % COLOURS.length];
}

function makeKeys() {
  // A class named by a digit (DEC on digits) has that digit; the others take
  // the free digits 1..9, 0 in order.
  for (const c of S.classes) if (/^[0-9]$/.test(c)) S.digitOf[c] = c;
  const free = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0"].filter((d) => !S.digitOf[d]);
  for (const c of S.classes.filter((name) => !/^[0-9]$/.test(name))) {
    if (free.length) S.digitOf[free.shift()] = c;
  }
  const byInitial = {};
  for (const c of S.classes) {
    const k = c[0].toLowerCase();
    (byInitial[k] = byInitial[k] || []).push(c);
  }
  for (const [k, cs] of Object.entries(byInitial)) {
    if (cs.length === 1 && /[a-z]/.test(k) && !RESERVED.has(k)) S.initialOf[k] = cs[0];
  }
}

function keysOf(c) {
  const keys = Object.keys(S.digitOf).filter((d) => S.digitOf[d] === c);
  return keys.concat(Object.keys(S.initialOf).filter((k) => S.initialOf[k] === c));
}

function buildControls() {
  const buttons = $("classbuttons");
  for (const c of S.labels) {
    const b = document.createElement("button");
    const keys = c === UNSURE ? ["x"] : keysOf(c);
    b.textContent = `${c} (${keys.join(", ")})`;
    b.style.borderColor = colour(c);
    b.dataset.label = c;
    b.addEventListener("click", () => run(() => labelFocused(c)));
    buttons.appendChild(b);
  }
  const rename = $("rename-class");
  for (const c of S.classes) rename.add(new Option(c, c));
  $("rename").hidden = S.kind !== "dec-run";

  const spaced = (nodes) => nodes.flatMap((n, i) => (i ? [" ", n] : [n]));
  const rows = [];
  for (const c of S.classes) {
    const keys = keysOf(c);
    rows.push([spaced(keys.map(kbd)), ["label the image ", el("b", {}, c), ", go on"]]);
    rows.push([spaced(keys.map((k) => [kbd("shift"), "+", kbd(k.toUpperCase())]).flat()),
               ["every image of the page not yet reviewed is ", el("b", {}, c), "; next page"]]);
  }
  rows.push([[kbd("x")], ["unsure / reject"]], [[kbd("u")], ["undo the last action"]],
            [[kbd("←↓↑→"), " or ", spaced(["h", "j", "k", "l"].map(kbd))], ["move"]],
            [[kbd("n"), " ", kbd("p"), " (PageDown, PageUp)"], ["next / previous page"]],
            [[kbd("]"), " ", kbd("[")], ["next / previous group"]],
            [[kbd("t")], ["most / least sure first"]], [[kbd("?")], ["these keys"]]);
  $("keys").replaceChildren(...rows.map(([k, what]) => el("tr", {}, el("td", {}, k),
                                                           el("td", {}, what))));
}

// ---- state in the address, so a reload comes back to the same place ---------------------
function readHash() {
  const h = new URLSearchParams(location.hash.slice(1));
  S.group = Math.min(Math.max(parseInt(h.get("g") || "0", 10) || 0, 0), S.groups.length - 1);
  S.order = h.get("o") === "asc" ? "asc" : "desc";
  S.page = Math.max(parseInt(h.get("p") || "0", 10) || 0, 0);
  S.focus = Math.max(parseInt(h.get("f") || "0", 10) || 0, 0);
}

function writeHash() {
  history.replaceState(null, "", `#g=${S.group}&o=${S.order}&p=${S.page}&f=${S.focus}`);
}

// ---- drawing ----------------------------------------------------------------------------
function showSummary(summary) {
  const counts = Object.entries(summary.counts)
    .map(([c, n]) => el("span", {style: {color: colour(c)}}, `${c} `, el("b", {}, String(n))));
  const share = summary.total ? (100 * summary.reviewed / summary.total).toFixed(1) : "0.0";
  $("counts").replaceChildren(...counts);
  $("progress").textContent = `reviewed ${summary.reviewed} / ${summary.total} (${share}%)`;
  $("progress").dataset.reviewed = summary.reviewed;
  const select = $("group");
  select.replaceChildren();
  for (const g of summary.groups) {
    const name = g.class ? `${g.name} → ${g.class}` : g.name;
    select.add(new Option(`${name} · ${g.reviewed}/${g.size}`, g.index));
  }
  select.value = S.group;
}

function badge(label, extra = "") {
  return label ? el("span", {className: `badge${extra}`, style: {background: colour(label)}},
                    label) : null;
}

function renderGrid() {
  $("grid").replaceChildren(...S.items.map((it, i) => {
    const conf = it.confidence === null ? "" : ` · ${it.confidence.toFixed(2)}`;
    return el("figure", {className: `cell${it.label ? " reviewed" : ""}`,
                         dataset: {i: String(i), id: String(it.id)}},
              el("img", {loading: "lazy", src: `thumb/${Number(it.id)}`, alt: ""}),
              badge(it.label), el("figcaption", {}, `${it.name}${conf}`));
  }));
  $("pageinfo").textContent = `page ${S.page + 1} / ${S.pages}`;
  const sure = S.items.some((it) => it.confidence !== null);
  $("order").textContent = sure ? (S.order === "desc" ? "most sure first" : "least sure first")
                                : (S.order === "desc" ? "A → Z" : "Z → A");
  setFocus(S.focus);
}

function renderCell(i) {
  const cell = $("grid").children[i];
  if (!cell) return;
  const it = S.items[i];
  cell.classList.toggle("reviewed", Boolean(it.label));
  const old = cell.querySelector(".badge");
  if (old) old.remove();
  if (it.label) cell.querySelector("img").after(badge(it.label));
}

let detailFor = null;
function setFocus(i) {
  if (!S.items.length) { $("big").removeAttribute("src"); $("meta").textContent = "empty group"; return; }
  S.focus = Math.min(Math.max(i, 0), S.items.length - 1);
  for (const cell of document.querySelectorAll(".cell.focus")) cell.classList.remove("focus");
  const cell = $("grid").children[S.focus];
  cell.classList.add("focus");
  cell.scrollIntoView({block: "nearest"});
  writeHash();
  const it = S.items[S.focus];
  if (detailFor !== it.id) {
    detailFor = it.id;
    $("big").src = `image/${Number(it.id)}`;
    api(`api/item/${it.id}`).then((info) => { if (detailFor === info.id) showDetail(info); })
      .catch((err) => say(err.message, true));
  }
}

function showDetail(info) {
  const rows = [["file", info.name], ["group", info.group],
                ["label", info.label ? badge(info.label, " inline") : "—"]];
  const bytes = info.bytes < 1024 ? `${info.bytes} bytes` : `${(info.bytes / 1024).toFixed(0)} KiB`;
  if (info.width) rows.push(["size", `${info.width} × ${info.height}, ${bytes}`]);
  if (info.missing) rows.push(["file", "missing or outside the source"]);
  if (info.unreadable) rows.push(["file", "not readable as an image"]);
  for (const [name, v] of Object.entries(info.scores || {})) {
    const bar = el("span", {className: "bar", style: {width: `${Math.round(Number(v) * 120)}px`}});
    rows.push([name, [bar, ` ${Number(v).toFixed(3)}`]]);
  }
  for (const [lang, text] of Object.entries(info.descriptions || {})) rows.push([lang, String(text)]);
  $("meta").replaceChildren(el("table", {}, rows.map(([k, v]) => el("tr", {}, el("td", {}, k),
                                                                         el("td", {}, v)))));
  $("big").classList.toggle("small", (info.width || 999) < 128);
}

// ---- actions ----------------------------------------------------------------------------
async function loadPage(focus) {
  const d = await api(`api/page?group=${S.group}&order=${S.order}&page=${S.page}&size=${S.pageSize}`);
  S.page = d.page;
  S.pages = d.pages;
  S.items = d.items;
  if (focus !== undefined) S.focus = focus;
  detailFor = null;
  renderGrid();
}

function applyChanged(changed) {
  const focused = S.items[S.focus];
  if (focused && String(focused.id) in changed) detailFor = null;   // its label changed
  let first = null;
  S.items.forEach((it, i) => {
    if (String(it.id) in changed) {
      it.label = changed[it.id];
      renderCell(i);
      if (first === null) first = i;
    }
  });
  return first;
}

async function labelFocused(label) {
  const it = S.items[S.focus];
  if (!it) return;
  const d = await api("api/label", {ids: [it.id], label});
  applyChanged(d.changed);
  showSummary(d.summary);
  if (S.focus < S.items.length - 1) setFocus(S.focus + 1);
  else if (S.page < S.pages - 1) { S.page += 1; await loadPage(0); }
  else say("last image of this group");
}

async function acceptPage(label) {
  const d = await api("api/accept", {ids: S.items.map((it) => it.id), label});
  applyChanged(d.changed);
  showSummary(d.summary);
  say(`${Object.keys(d.changed).length} accepted as ${label}`);
  if (S.page < S.pages - 1) { S.page += 1; await loadPage(0); }
}

async function undo() {
  const d = await api("api/undo", {});
  const first = applyChanged(d.changed);
  showSummary(d.summary);
  const n = Object.keys(d.changed).length;
  say(n ? `undone: ${n} image${n > 1 ? "s" : ""}` : "nothing to undo");
  setFocus(first !== null ? first : S.focus);
}

async function rename() {
  const label = $("rename-class").value;
  const d = await api("api/rename", {group: S.group, label});
  showSummary(d.summary);
  applyChanged(d.changed);
  setFocus(S.focus);
  say(`${S.groups[S.group]} named ${label}; ${Object.keys(d.changed).length} images labelled`);
}

async function exportLabels() {
  const d = await api("api/export", {});
  say(`${d.rows} labels written to ${d.path}`);
}

async function goPage(page) {
  if (page < 0 || page >= S.pages || page === S.page) return;
  S.page = page;
  await loadPage(0);
}

async function goGroup(group) {
  if (group < 0 || group >= S.groups.length) return;
  S.group = group;
  S.page = 0;
  $("group").value = group;
  await loadPage(0);
}

function columns() {
  const cells = $("grid").children;
  if (!cells.length) return 1;
  const top = cells[0].offsetTop;
  let n = 0;
  while (n < cells.length && cells[n].offsetTop === top) n += 1;
  return n;
}

function toggleHelp(show) {
  $("help").hidden = !show;
}

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (!$("help").hidden) {
    if (e.key === "Escape" || e.key === "?") { toggleHelp(false); e.preventDefault(); }
    return;
  }
  if (e.target.tagName === "SELECT" && !e.key.startsWith("Page")) e.target.blur();
  const digit = /^(?:Digit|Numpad)([0-9])$/.exec(e.code);
  if (digit && S.digitOf[digit[1]]) {
    const c = S.digitOf[digit[1]];
    e.preventDefault();
    run(() => (e.shiftKey ? acceptPage(c) : labelFocused(c)));
    return;
  }
  const k = e.key;
  if (k.length === 1 && S.initialOf[k.toLowerCase()]) {
    const c = S.initialOf[k.toLowerCase()];
    e.preventDefault();
    run(() => (e.shiftKey ? acceptPage(c) : labelFocused(c)));
    return;
  }
  const moves = {ArrowLeft: -1, h: -1, ArrowRight: 1, l: 1};
  const act = {
    ArrowUp: () => setFocus(S.focus - columns()), k: () => setFocus(S.focus - columns()),
    ArrowDown: () => setFocus(S.focus + columns()), j: () => setFocus(S.focus + columns()),
    Home: () => setFocus(0), End: () => setFocus(S.items.length - 1),
    n: () => goPage(S.page + 1), PageDown: () => goPage(S.page + 1),
    p: () => goPage(S.page - 1), PageUp: () => goPage(S.page - 1),
    "]": () => goGroup(S.group + 1), "[": () => goGroup(S.group - 1),
    t: () => { S.order = S.order === "desc" ? "asc" : "desc"; S.page = 0; return loadPage(0); },
    u: undo, x: () => labelFocused(UNSURE), "?": () => toggleHelp(true),
  };
  if (k in moves) { e.preventDefault(); run(() => setFocus(S.focus + moves[k])); }
  else if (k in act) { e.preventDefault(); run(act[k]); }
});

$("grid").addEventListener("click", (e) => {
  const cell = e.target.closest(".cell");
  if (cell) run(() => setFocus(Number(cell.dataset.i)));
});
$("group").addEventListener("change", (e) => run(() => goGroup(Number(e.target.value))));
$("order").addEventListener("click", () => run(() => {
  S.order = S.order === "desc" ? "asc" : "desc"; S.page = 0; return loadPage(0);
}));
$("prev").addEventListener("click", () => run(() => goPage(S.page - 1)));
$("next").addEventListener("click", () => run(() => goPage(S.page + 1)));
$("undo").addEventListener("click", () => run(undo));
$("export").addEventListener("click", () => run(exportLabels));
$("rename-button").addEventListener("click", () => run(rename));
$("help-button").addEventListener("click", () => toggleHelp(true));
$("help-close").addEventListener("click", () => toggleHelp(false));

run(async () => {
  const st = await api("api/state");
  S.classes = st.classes;
  S.labels = st.labels;
  S.groups = st.source.groups;
  S.kind = st.source.kind;
  S.pageSize = st.page_size;
  $("title").textContent = `${st.source.kind}: ${st.source.path}`;
  document.title = `review · ${st.source.path}`;
  makeKeys();
  buildControls();
  readHash();
  showSummary(st.summary);
  await loadPage();
});
