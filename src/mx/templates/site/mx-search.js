// Registry search over the sharded index under search/ (see mx/site/searchdata.py): a query
// fetches the small meta.json, then only the shards of its words and the records of the
// models it shows. Every word of the query must begin a word of a model's name, summary,
// task, tags or card keywords (or any part of a word of its name).
(function () {
  "use strict";
  var MAX_SHOWN = 50;
  function setup(box) {
    var input = box.querySelector(".mx-search-input");
    var list = box.querySelector(".mx-search-results");
    if (!input || !list) return;
    var base = box.getAttribute("data-search") || "search/";
    var root = box.getAttribute("data-root") || "";
    var files = {}, meta = null, generation = 0;
    function get(path) {
      if (!files[path]) {
        files[path] = fetch(base + path).then(function (r) {
          if (!r.ok) throw new Error(path + ": " + r.status);
          return r.json();
        });
        files[path].catch(function () { delete files[path]; });
      }
      return files[path];
    }
    function loadMeta() {
      return get("meta.json").then(function (m) { meta = m; return m; });
    }
    function shardsFor(word) {
      var keys = meta.shards, out = [];
      for (var i = 0; i < keys.length; i++) {
        var k = keys[i];
        if (k.charAt(k.length - 1) !== "_" && word.indexOf(k) === 0) return [k];
        if (k.indexOf(word) === 0) out.push(k);
      }
      return out;
    }
    // ids -> 1 where the word matched in the name, 0 elsewhere
    function match(word) {
      return Promise.all(shardsFor(word).map(function (k) { return get("t/" + k + ".json"); }))
        .then(function (shards) {
          var hits = {};
          shards.forEach(function (shard) {
            for (var term in shard) {
              if (term.indexOf(word) !== 0) continue;
              var p = shard[term];
              for (var i = 0; i < p.length; i++) {
                var id = p[i] >> 1;
                hits[id] = (hits[id] || 0) | (p[i] & 1);
              }
            }
          });
          return hits;
        });
    }
    function search(words) {
      return Promise.all(words.map(match)).then(function (each) {
        var scored = [];
        for (var id in each[0]) {
          var score = 0, ok = true;
          for (var j = 0; j < each.length; j++) {
            if (!(id in each[j])) { ok = false; break; }
            score += each[j][id] ? 3 : 1;
          }
          if (ok) scored.push([score, +id]);
        }
        scored.sort(function (a, b) { return b[0] - a[0] || a[1] - b[1]; });
        var top = scored.slice(0, MAX_SHOWN).map(function (s) { return s[1]; });
        var per = meta.docs, need = {};
        top.forEach(function (id) { need[Math.floor(id / per)] = true; });
        return Promise.all(Object.keys(need).map(function (n) {
          return get("d/" + n + ".json").then(function (d) { return [n, d]; });
        })).then(function (docs) {
          var byFile = {};
          docs.forEach(function (nd) { byFile[nd[0]] = nd[1]; });
          return top.map(function (id) { return byFile[Math.floor(id / per)][id % per]; });
        });
      });
    }
    function render(records) {
      list.textContent = "";
      records.forEach(function (m) {
        var li = document.createElement("li"), a = document.createElement("a");
        a.href = root + "models/" + m[0] + ".html";
        a.textContent = m[0] + " " + m[1];
        var s = document.createElement("span");
        s.className = "mx-summary";
        s.textContent = " — " + (m[2] || "");
        li.appendChild(a); li.appendChild(s); list.appendChild(li);
      });
      if (!records.length) {
        var li = document.createElement("li");
        li.textContent = "No models match.";
        list.appendChild(li);
      }
    }
    function show() {
      var mine = ++generation;
      var words = input.value.toLowerCase().match(/[a-z0-9]{2,40}/g) || [];
      if (!words.length) { list.textContent = ""; return; }
      loadMeta().then(function () { return search(words); }).then(function (records) {
        if (mine === generation) render(records);  // a later keystroke won
      }).catch(function () {
        if (mine === generation) list.textContent = "Search data could not be loaded.";
      });
    }
    // meta.json (a few hundred bytes a shard) is fetched as soon as a search is likely:
    // on the search page, or when the box is focused or hovered.
    input.addEventListener("focus", loadMeta);
    input.addEventListener("pointerenter", loadMeta);
    input.addEventListener("input", show);
    if (box.hasAttribute("data-preload") || document.activeElement === input) loadMeta();
    if (input.value) show();
  }
  function init() {
    Array.prototype.forEach.call(document.querySelectorAll(".mx-search"), setup);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
