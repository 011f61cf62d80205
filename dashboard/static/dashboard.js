// Keeps pages live without full reloads: every few seconds the page's live part (#live) is
// fetched again (X-Fragment: 1) and swapped in. Also: local times, "ago" texts, confirmations.
"use strict";
(function () {
  const live = document.getElementById("live");
  const status = document.getElementById("live-status");
  const seconds = parseInt(document.body.dataset.refresh || "5", 10);
  let paused = false;
  let busy = false;
  let lastUpdate = Date.now();

  function pad(n) { return String(n).padStart(2, "0"); }
  function localText(ts) {
    const d = new Date(ts * 1000);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }
  function ago(seconds) {
    if (seconds < 1) return "just now";
    if (seconds < 60) return Math.floor(seconds) + " s ago";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h " + Math.floor(seconds % 3600 / 60) + " min ago";
    return Math.floor(seconds / 86400) + " d ago";
  }
  const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  function localise(root) {
    root.querySelectorAll("text[data-tick]").forEach(function (el) {
      const d = new Date(parseFloat(el.dataset.tick) * 1000);
      const hm = pad(d.getHours()) + ":" + pad(d.getMinutes());
      el.textContent = parseFloat(el.dataset.span) > 2 * 86400 ? DAYS[d.getDay()] + " " + hm : hm;
    });
    root.querySelectorAll("time[data-ts]").forEach(function (el) {
      const ts = parseFloat(el.dataset.ts);
      if (!el.title) el.title = el.textContent;
      el.textContent = localText(ts);
    });
    tick(root);
  }
  function tick(root) {
    const now = Date.now() / 1000;
    (root || document).querySelectorAll(".ago[data-ago]").forEach(function (el) {
      el.textContent = ago(Math.max(0, now - parseFloat(el.dataset.ago)));
    });
  }
  function showStatus(text, cls) {
    if (!status) return;
    status.textContent = text;
    status.className = "live-status" + (cls ? " " + cls : "");
  }
  function openDetails() {
    return Array.from(live.querySelectorAll("details[id][open]")).map(function (d) { return d.id; });
  }

  async function refresh() {
    if (!live || paused || busy || document.hidden) return;
    const selection = window.getSelection();
    if (selection && !selection.isCollapsed && live.contains(selection.anchorNode)) return; // someone is copying
    busy = true;
    try {
      const response = await fetch(window.location.href, {
        headers: { "X-Fragment": "1" }, credentials: "same-origin", cache: "no-store", redirect: "manual",
      });
      if (response.type === "opaqueredirect" || response.status === 401) { window.location.reload(); return; }
      if (!response.ok && response.status !== 404) { showStatus("offline · retrying", "offline"); return; }
      const html = await response.text();
      const keepOpen = openDetails();
      live.innerHTML = html;
      keepOpen.forEach(function (id) { const d = document.getElementById(id); if (d) d.open = true; });
      localise(live);
      lastUpdate = Date.now();
      showStatus("live · updated " + localText(lastUpdate / 1000).slice(11));
    } catch (err) {
      showStatus("offline · retrying", "offline");
    } finally {
      busy = false;
    }
  }

  if (status) {
    status.title = "click to pause or resume live updates";
    status.addEventListener("click", function () {
      paused = !paused;
      showStatus(paused ? "paused · click to resume" : "live", paused ? "paused" : "");
      if (!paused) refresh();
    });
  }
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) { event.preventDefault(); return; }
    if (form.method === "get") {
      // Short, shareable filter URLs: leave out the fields that are not set.
      form.querySelectorAll("input[name], select[name]").forEach(function (el) { if (!el.value) el.disabled = true; });
      setTimeout(function () { form.querySelectorAll("[disabled]").forEach(function (el) { el.disabled = false; }); }, 0);
    }
  });
  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });
  localise(document);
  if (live && seconds > 0) setInterval(refresh, seconds * 1000);
  setInterval(function () { tick(document); }, 1000);
})();
