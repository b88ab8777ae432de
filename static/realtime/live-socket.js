/* One live WebSocket shared by the live pages (dashboard, campaign progress): it answers pings, reports
   its state, and reconnects with exponential backoff and full jitter, so a restarted server is not hit by
   every browser at once. The server sends a snapshot on every (re)connect, so nothing is missed. */
(function () {
  "use strict";

  var BASE_DELAY = 1000;
  var MAX_DELAY = 30000;
  // Close codes after which retrying cannot help (see realtime/consumers.py).
  var FINAL = {
    4401: "Signed out: reload the page to sign in again.",
    4403: "No access to this workspace.",
    4404: "Not found in this workspace."
  };

  // options: path, params (query string values), onMessage(msg), onStatus(text, live).
  window.liveSocket = function (options) {
    var attempts = 0;
    var query = Object.keys(options.params || {}).map(function (k) {
      return encodeURIComponent(k) + "=" + encodeURIComponent(options.params[k]);
    }).join("&");

    function reconnectDelay() {
      var cap = Math.min(MAX_DELAY, BASE_DELAY * Math.pow(2, attempts));
      attempts += 1;
      return Math.floor(Math.random() * cap);
    }

    function connect() {
      var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      var socket = new WebSocket(scheme + window.location.host + options.path + (query ? "?" + query : ""));
      socket.addEventListener("open", function () {
        attempts = 0;
        options.onStatus("Live", true);
      });
      socket.addEventListener("message", function (e) {
        var msg;
        try { msg = JSON.parse(e.data); } catch (err) { return; }
        if (msg.type === "ping") {
          socket.send(JSON.stringify({ type: "pong" }));
          return;
        }
        options.onMessage(msg);
      });
      socket.addEventListener("close", function (e) {
        if (FINAL[e.code]) { options.onStatus(FINAL[e.code], false); return; }
        var delay = reconnectDelay();
        options.onStatus("Disconnected: reconnecting in " + Math.ceil(delay / 1000) + " s…", false);
        window.setTimeout(connect, delay);
      });
    }

    connect();
  };
})();
