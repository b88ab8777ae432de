/* Live dashboard: one WebSocket (live-socket.js), a snapshot on every (re)connect, coalesced updates. */
(function () {
  "use strict";

  var root = document.getElementById("rt-dashboard");
  if (!root) { return; }
  var workspace = root.dataset.workspace;
  var statusEl = document.getElementById("rt-status");
  var feedEl = document.getElementById("rt-feed");
  var broadcastEl = document.getElementById("rt-broadcast");
  var FEED_LIMIT = 50;
  var chart = null;
  var state = { minutes: [], series: {} };
  var seen = {};

  function setStatus(text, live) {
    statusEl.textContent = text;
    statusEl.classList.toggle("rt-live", !!live);
  }

  function minuteLabel(iso) {
    var d = new Date(iso);
    return ("0" + d.getHours()).slice(-2) + ":" + ("0" + d.getMinutes()).slice(-2);
  }

  function renderCounters() {
    var last = state.minutes.length - 1;
    root.querySelectorAll("[data-counter]").forEach(function (el) {
      var values = state.series[el.dataset.counter] || [];
      el.textContent = last >= 0 && values.length ? String(values[last]) : "0";
    });
  }

  function renderChart() {
    if (typeof window.Chart === "undefined") { return; }
    var labels = state.minutes.map(minuteLabel);
    var sent = state.series.sent || [];
    var opened = state.series.opened || [];
    if (!chart) {
      chart = new window.Chart(document.getElementById("rt-chart"), {
        type: "line",
        data: {
          labels: labels,
          datasets: [
            { label: "Sent", data: sent, borderColor: "#2563eb", backgroundColor: "#2563eb", tension: 0.2, pointRadius: 0, pointHoverRadius: 4 },
            { label: "Opened", data: opened, borderColor: "#16a34a", backgroundColor: "#16a34a", tension: 0.2, pointRadius: 0, pointHoverRadius: 4 }
          ]
        },
        options: {
          animation: false,
          maintainAspectRatio: false,
          scales: { y: { beginAtZero: true, ticks: { precision: 0 } } }
        }
      });
      return;
    }
    chart.data.labels = labels;
    chart.data.datasets[0].data = sent;
    chart.data.datasets[1].data = opened;
    chart.update("none");
  }

  // The full hour from a snapshot; later pushes carry the last minutes only and are merged by time.
  function mergeCounters(counters, replace) {
    if (replace || !state.minutes.length) {
      state = { minutes: counters.minutes.slice(), series: {} };
      Object.keys(counters.series).forEach(function (k) { state.series[k] = counters.series[k].slice(); });
    } else {
      counters.minutes.forEach(function (minute, i) {
        var at = state.minutes.indexOf(minute);
        if (at === -1) {
          state.minutes.push(minute);
          Object.keys(state.series).forEach(function (k) { state.series[k].push(0); });
          at = state.minutes.length - 1;
        }
        Object.keys(counters.series).forEach(function (k) {
          if (!state.series[k]) { state.series[k] = state.minutes.map(function () { return 0; }); }
          state.series[k][at] = counters.series[k][i];
        });
      });
      while (state.minutes.length > 60) {
        state.minutes.shift();
        Object.keys(state.series).forEach(function (k) { state.series[k].shift(); });
      }
    }
    renderCounters();
    renderChart();
  }

  function addEvents(events) {
    events.forEach(function (event) {
      if (seen[event.id]) { return; }
      seen[event.id] = true;
      var li = document.createElement("li");
      var time = document.createElement("time");
      time.dateTime = event.occurred_at;
      time.textContent = new Date(event.occurred_at).toLocaleTimeString();
      var name = document.createElement("strong");
      name.textContent = event.name;
      li.appendChild(time);
      li.appendChild(document.createTextNode(" "));
      li.appendChild(name);
      if (event.subscriber_id) { li.appendChild(document.createTextNode(" · subscriber " + event.subscriber_id)); }
      li.className = "rt-event rt-event-" + event.type;
      feedEl.insertBefore(li, feedEl.firstChild);
    });
    while (feedEl.children.length > FEED_LIMIT) { feedEl.removeChild(feedEl.lastChild); }
  }

  function setNumber(id, value) {
    var el = document.getElementById(id);
    if (value === undefined) { return; }
    el.textContent = value === null ? "n/a" : String(value);
  }

  function queueTotal(depth) {
    if (!depth) { return depth === undefined ? undefined : null; }
    return Object.keys(depth).reduce(function (sum, k) { return sum + depth[k]; }, 0);
  }

  function onMessage(msg) {
    switch (msg.type) {
      case "snapshot":
        feedEl.textContent = "";
        seen = {};
        mergeCounters(msg.counters, true);
        addEvents(msg.events || []);
        setNumber("rt-enrollments", msg.active_enrollments);
        setNumber("rt-queue", queueTotal(msg.queue_depth));
        break;
      case "update":
        mergeCounters(msg.counters, false);
        addEvents(msg.events || []);
        setNumber("rt-enrollments", msg.active_enrollments);
        setNumber("rt-queue", queueTotal(msg.queue_depth));
        break;
      case "broadcast":
        broadcastEl.textContent = msg.message + " (" + msg.sender + ")";
        broadcastEl.hidden = false;
        break;
      default:
        break;
    }
  }

  window.liveSocket({
    path: root.dataset.socketPath,
    params: { workspace: workspace },
    onMessage: onMessage,
    onStatus: setStatus
  });
})();
