// Measures a rendered report (injected by test_report_browser.py into a copy of report.html).
// Result: JSON in <body data-layout="...">, read back from `chromium --dump-dom`.
(function () {
  const out = {overflow: [], clipped: [], broken: [], boxes: {}, height: 0, width: 0};
  const hidden = (el) => { const d = el.closest("details:not([open])"); return d && !el.closest("summary") && d !== el; };
  const label = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\s+/).join(".") : "") +
    " \"" + (el.textContent || "").trim().slice(0, 60) + "\"";
  for (const el of document.querySelectorAll("body *")) {
    if (el.closest("svg") && el.tagName.toLowerCase() !== "svg") continue;
    if (hidden(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    const p = el.parentElement;
    const pr = p.getBoundingClientRect();
    if (r.right > pr.right + 1 || r.left < pr.left - 1) out.overflow.push(label(el) + " in " + label(p));
    const style = getComputedStyle(el);
    if (style.overflowX !== "visible" && el.scrollWidth > el.clientWidth + 1) out.clipped.push(label(el));
  }
  // A word (a run of letters) must sit on one line; long tokens (ids, paths, hashes > 30 chars) may break.
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const range = document.createRange();
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || el.closest("svg, style, script") || hidden(el)) continue;
    const text = node.data;
    for (const m of text.matchAll(/[A-Za-z]{2,}/g)) {
      let a = m.index, b = m.index + m[0].length;
      while (a > 0 && !/\s/.test(text[a - 1])) a--;
      while (b < text.length && !/\s/.test(text[b])) b++;
      if (b - a > 30) continue;
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const tops = new Set(Array.from(range.getClientRects()).filter((q) => q.width > 0).map((q) => Math.round(q.top)));
      if (tops.size > 1) out.broken.push(m[0] + " in " + label(el));
    }
  }
  for (const id of ["verdict", "signoff", "signature", "issues", "stages", "checklist"]) {
    const el = document.getElementById(id);
    if (el) { const r = el.getBoundingClientRect(); out.boxes[id] = {top: r.top + scrollY, bottom: r.bottom + scrollY}; }
  }
  out.height = document.documentElement.scrollHeight;
  out.width = document.documentElement.scrollWidth;
  out.viewport = innerWidth;
  document.body.setAttribute("data-layout", JSON.stringify(out));
})();
