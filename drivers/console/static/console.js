// The console's only script: show the fields of the chosen options, confirm dangerous buttons,
// print, count down to a pending warning's deadline, and refresh live status parts (keeping what
// the user unfolded). Pages work without it (every action is a plain form, every folded list a <details>).
(function () {
  "use strict";
  function syncShows(form) {
    form.querySelectorAll("[data-show]").forEach(function (el) {
      var spec = el.getAttribute("data-show").split("=");
      var checked = form.querySelector('input[name="' + spec[0] + '"]:checked');
      var on = checked && spec[1].split(",").indexOf(checked.value) >= 0;
      el.hidden = !on;
    });
  }
  // a list the user unfolded (details[data-fold]) stays unfolded when the live part is fetched again
  function replaceKeepingFolds(el, html) {
    var open = Object.create(null);
    el.querySelectorAll("details[data-fold]").forEach(function (d) {
      if (d.open) { open[d.getAttribute("data-fold")] = true; }
    });
    el.innerHTML = html;
    el.querySelectorAll("details[data-fold]").forEach(function (d) {
      if (open[d.getAttribute("data-fold")] === true) { d.open = true; }
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form").forEach(function (form) {
      if (form.querySelector("[data-show]")) {
        syncShows(form);
        form.addEventListener("change", function () { syncShows(form); });
      }
      var question = form.getAttribute("data-confirm");
      if (question) {
        form.addEventListener("submit", function (ev) { if (!window.confirm(question)) { ev.preventDefault(); } });
      }
    });
    // a pending warning's countdown (the page shows the time left when served; this keeps it moving)
    var counters = document.querySelectorAll("[data-deadline]");
    if (counters.length) {
      setInterval(function () {
        counters.forEach(function (el) {
          var left = Math.max(0, Math.round(parseFloat(el.getAttribute("data-deadline")) - Date.now() / 1000));
          el.textContent = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
        });
      }, 1000);
    }
    document.querySelectorAll("[data-print]").forEach(function (b) {
      b.addEventListener("click", function () { window.print(); });
    });
    document.querySelectorAll("[data-refresh]").forEach(function (el) {
      var url = el.getAttribute("data-refresh");
      var every = Math.max(1, parseInt(el.getAttribute("data-every"), 10) || 5) * 1000;
      setInterval(function () {
        fetch(url, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
          if (r.ok) { return r.text(); }
          throw new Error(String(r.status));
        }).then(function (html) { replaceKeepingFolds(el, html); }).catch(function () {});
      }, every);
    });
  });
})();
