// Registry search: one compact JSON file, fetched on first use, matched in the page.
// Every word of the query must appear in a model's name, summary, task, tags or card words.
(function () {
  "use strict";
  function setup(box) {
    var input = box.querySelector(".mx-search-input");
    var list = box.querySelector(".mx-search-results");
    var root = box.getAttribute("data-root") || "";
    var models = null, loading = null;
    function load() {
      if (!loading) {
        loading = fetch(box.getAttribute("data-index")).then(function (r) { return r.json(); })
          .then(function (data) {
            models = data.models.map(function (m) {
              var text = [m.name, m.summary || "", m.task || "", m.keywords || ""]
                .concat(m.tags || []).join(" ").toLowerCase();
              return { m: m, text: text, name: m.name.toLowerCase() };
            });
          });
      }
      return loading;
    }
    function show() {
      var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      list.textContent = "";
      if (!words.length || !models) return;
      var hits = [];
      for (var i = 0; i < models.length && hits.length < 200; i++) {
        var e = models[i], ok = true, score = 0;
        for (var j = 0; j < words.length; j++) {
          if (e.text.indexOf(words[j]) < 0) { ok = false; break; }
          score += e.name.indexOf(words[j]) >= 0 ? 3 : 1;
        }
        if (ok) hits.push([score, e.m]);
      }
      hits.sort(function (a, b) { return b[0] - a[0] || (a[1].name < b[1].name ? -1 : 1); });
      hits.slice(0, 50).forEach(function (h) {
        var m = h[1], li = document.createElement("li"), a = document.createElement("a");
        a.href = root + "models/" + m.name + ".html";
        a.textContent = m.name + " " + m.latest;
        var s = document.createElement("span");
        s.className = "mx-summary";
        s.textContent = " — " + (m.summary || "");
        li.appendChild(a); li.appendChild(s); list.appendChild(li);
      });
      if (!hits.length) {
        var li = document.createElement("li");
        li.textContent = "No models match.";
        list.appendChild(li);
      }
    }
    // Fetch the listing as soon as a search is likely (the search page, a focused or
    // hovered box), so the first keystroke finds it parsed and results show at once.
    input.addEventListener("focus", load);
    input.addEventListener("pointerenter", load);
    input.addEventListener("input", function () { load().then(show); });
    if (box.hasAttribute("data-preload") || document.activeElement === input) load();
    if (input.value) load().then(show);
  }
  function init() {
    Array.prototype.forEach.call(document.querySelectorAll(".mx-search"), setup);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
