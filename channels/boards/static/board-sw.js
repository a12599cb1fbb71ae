// A board's service worker: keeps the board's page, its script and its font, so a screen
// that restarts while its link is down still opens its page (the programme itself is in
// local storage). The page is fetched fresh whenever the network answers.
"use strict";
var CACHE = "coso-board-v1";
var KEEP = ["/boards/static/board.js", "/boards/static/DejaVuSans-Bold.ttf"];

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(CACHE).then(function (cache) { return cache.addAll(KEEP); }));
  self.skipWaiting();
});

self.addEventListener("activate", function (event) {
  // the boards' pages open now are kept at once
  event.waitUntil(self.clients.claim().then(function () {
    return self.clients.matchAll({ type: "window" });
  }).then(function (windows) {
    return caches.open(CACHE).then(function (cache) {
      return Promise.all(windows.map(function (w) {
        var path = new URL(w.url).pathname;
        return /^\/boards\/[a-z0-9-]+$/.test(path) ? cache.add(path).catch(function () {}) : null;
      }));
    });
  }));
});

self.addEventListener("fetch", function (event) {
  var url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== location.origin) { return; }
  var page = /^\/boards\/[a-z0-9-]+$/.test(url.pathname);
  if (!page && KEEP.indexOf(url.pathname) < 0 && !url.pathname.startsWith("/boards/images/")) { return; }
  if (page) {  // the network first: a new page when there is one, the kept one when not
    event.respondWith(fetch(event.request).then(function (answer) {
      if (answer.ok) {
        var copy = answer.clone();
        caches.open(CACHE).then(function (cache) { cache.put(url.pathname, copy); });
      }
      return answer;
    }).catch(function () { return caches.match(url.pathname); }));
    return;
  }
  event.respondWith(caches.match(event.request).then(function (kept) {
    return kept || fetch(event.request).then(function (answer) {
      if (answer.ok) {
        var copy = answer.clone();
        caches.open(CACHE).then(function (cache) { cache.put(event.request, copy); });
      }
      return answer;
    });
  }));
});
