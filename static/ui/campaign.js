// A campaign's progress bar, moved live by the campaign socket (snapshot on connect, then coalesced
// "progress" pushes: {campaign_id, status, sent, total}). Without it the page shows its render-time numbers.
"use strict";

(function () {
  const root = document.getElementById("campaign-live");
  if (!root || typeof window.liveSocket !== "function") return;
  const bar = document.getElementById("campaign-progress");
  const text = document.getElementById("campaign-progress-text");
  const statusEl = document.getElementById("campaign-live-status");
  const badge = document.querySelector("[data-campaign-status]");

  function show(msg) {
    const total = Number(msg.total) || 0;
    const sent = Number(msg.sent) || 0;
    const percent = total ? Math.floor((sent * 100) / total) : 0;
    bar.max = total || 1;
    bar.value = sent;
    bar.textContent = percent + "%";
    text.textContent = sent + " of " + total + " sent (" + percent + "%)";
    text.dataset.percent = String(percent);
    document.querySelectorAll("[data-number]").forEach((el) => {
      el.textContent = String(el.dataset.number === "total" ? total : sent);
    });
    const note = document.querySelector("[data-note]");
    if (note && sent > 0) note.remove(); // "nothing sent yet" no longer holds
    if (badge && msg.status) {
      badge.className = "badge " + msg.status;
      badge.textContent = msg.status.charAt(0).toUpperCase() + msg.status.slice(1);
    }
  }

  window.liveSocket({
    path: root.dataset.socketPath,
    params: { workspace: root.dataset.workspace, campaign: root.dataset.campaign },
    onMessage: (msg) => {
      if (msg.type === "snapshot" || msg.type === "progress") show(msg);
    },
    onStatus: (message, live) => {
      statusEl.textContent = live ? "Live: updates as messages are sent." : message;
    },
  });
})();
