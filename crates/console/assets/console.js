// The console's one script: live rows on the alerts page. Every page works without it.
"use strict";
(function () {
  const status = document.getElementById("live-status");
  const table = document.querySelector("table#alerts tbody");
  if (!status || !table || !window.EventSource) return;
  const feed = new EventSource("/alerts/events?after=" + encodeURIComponent(status.dataset.revision));
  feed.addEventListener("alert", function (e) {
    const holder = document.createElement("tbody");
    holder.innerHTML = e.data;
    const row = holder.firstElementChild;
    if (!row) return;
    const old = document.getElementById(row.id);
    if (old) old.replaceWith(row); else table.prepend(row);
    row.classList.add("fresh");
    status.textContent = "Live: alert " + row.dataset.alert + " " + row.dataset.state + ".";
  });
  feed.onerror = function () { status.textContent = "Live updates paused; retrying…"; };
  feed.onopen = function () { status.textContent = "Live: new alerts appear here as they open."; };
})();
