// A public board's page: shows the programme coso pushes (server-sent events), keeps it and
// goes on showing it while the link is down, and reports what it displayed (kept in local
// storage until coso has it). No library, nothing from outside coso.
(function () {
  "use strict";
  var body = document.body;
  var NAME = body.dataset.board;
  var KEY = "coso-board:" + NAME;
  var base = "/boards/" + encodeURIComponent(NAME);
  var stored = {};
  try { stored = JSON.parse(localStorage.getItem(KEY) || "{}") || {}; } catch (e) { stored = {}; }
  var state = {
    token: stored.token || null,
    items: stored.items || [],
    pending: stored.pending || [],   // display records not yet accepted by coso
    seen: stored.seen || [],         // item ids shown at least once
    resume: stored.resume || null,   // the item an emergency interrupted
    skew: stored.skew || 0           // coso's clock less this screen's, in ms
  };
  var current = null;   // {item, record, started, hold}
  var fresh = [];       // new items to show next: {id, since} (since: when it came, or its start)
  var scrollMs = 0;     // how long the text on screen takes to scroll to its end
  var PAUSE = 2000;     // a scrolling text stays still this long at its start and at its end
  var source = null;
  var sending = false;
  var alarm = null;     // a wake-up at the start of the next item to come

  // coso's time: items come ahead of their start and go on screen at it by this clock.
  // A screen's own clock within a second of a programme's generated_at is taken as right
  // (the difference is mostly the programme's way here); one further off, coso's is used.
  var TRUSTED = 1000;
  function clockNow() { return Date.now() + state.skew; }

  function save() {
    try {
      localStorage.setItem(KEY, JSON.stringify({
        token: state.token, items: state.items, pending: state.pending,
        seen: state.seen.slice(-500), resume: state.resume, skew: state.skew
      }));
    } catch (e) { /* storage full: the programme still shows */ }
  }

  function uuid() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  var params = new URLSearchParams(location.search);
  if (params.get("token")) {
    state.token = params.get("token");
    save();
    history.replaceState(null, "", location.pathname);
  }

  // --- the programme --------------------------------------------------------------------
  var RANK = { emergency: 2, priority: 1, normal: 0 };

  function active(now) {
    var live = state.items.filter(function (i) {
      return Date.parse(i.starts_at) <= now && now < Date.parse(i.ends_at);
    });
    var urgent = live.filter(function (i) { return i.priority === "emergency"; });
    var list = urgent.length ? urgent : live;
    return list.slice().sort(function (a, b) { return RANK[b.priority] - RANK[a.priority]; });
  }

  function isFresh(id) { return fresh.some(function (f) { return f.id === id; }); }

  function takeProgramme(items, generatedAt) {
    var known = {};
    var at = Date.parse(generatedAt || "");
    if (!isNaN(at)) {
      var off = at - Date.now();
      state.skew = Math.abs(off) < TRUSTED ? 0 : off;
    }
    var now = clockNow();
    state.items.forEach(function (i) { known[i.id] = true; });
    items.forEach(function (i) {
      if (!known[i.id] && state.seen.indexOf(i.id) < 0 && !isFresh(i.id)) {
        fresh.push({ id: i.id, since: Math.max(now, Date.parse(i.starts_at) || 0) });
      }
    });
    state.items = items;
    save();
    tick();
  }

  // --- what shows -----------------------------------------------------------------------
  function fit(box, text) {
    text.classList.remove("scrolling");
    text.style.removeProperty("--scroll-by");
    scrollMs = 0;
    var lo = 2, hi = 40, size = lo;  // vh
    while (lo <= hi) {
      var mid = Math.floor((lo + hi) / 2);
      text.style.fontSize = mid + "vh";
      if (text.scrollHeight <= box.clientHeight && text.scrollWidth <= box.clientWidth) { size = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    text.style.fontSize = Math.max(size, 4) + "vh";
    var over = text.scrollHeight - box.clientHeight;
    if (over > 0) {  // too long to read at this size: it scrolls up, slowly, once to its end
      var moving = Math.max(6, over / 30);
      text.style.setProperty("--scroll-by", "-" + over + "px");
      text.style.animationDuration = moving + "s";
      text.style.animationDelay = PAUSE / 1000 + "s";
      text.classList.add("scrolling");
      scrollMs = PAUSE + moving * 1000 + PAUSE;
    }
  }

  function show(item) {
    var title = document.getElementById("title");
    var text = document.getElementById("text");
    var image = document.getElementById("image");
    var box = document.getElementById("box");
    body.classList.toggle("emergency", !!item && item.priority === "emergency");
    body.dataset.showing = item ? String(item.id) : "";
    if (!item) {
      title.textContent = "";
      text.textContent = "Chưa có thông báo";
      image.hidden = true;
      fit(box, text);
      return;
    }
    title.textContent = item.title || "";
    text.textContent = item.text || "";
    if (item.image) { image.src = item.image; image.hidden = false; } else { image.hidden = true; }
    fit(box, text);
  }

  function finish() {
    if (!current) { return; }
    var seconds = (clockNow() - current.started) / 1000;
    record(current, seconds);
    current = null;
  }

  function record(cur, seconds) {
    var r = { id: cur.record, delivery_id: cur.item.id, started_at: new Date(cur.started).toISOString(), seconds: Math.round(seconds * 10) / 10 };
    state.pending = state.pending.filter(function (p) { return p.id !== r.id; });
    state.pending.push(r);
    if (state.pending.length > 2000) { state.pending = state.pending.slice(-2000); }
    save();
    upload();
  }

  function start(item) {
    current = { item: item, record: uuid(), started: clockNow() };
    if (state.seen.indexOf(item.id) < 0) { state.seen.push(item.id); }
    fresh = fresh.filter(function (f) { return f.id !== item.id; });
    show(item);
    // a text that scrolls stays until its end has been on screen, whatever its seconds
    current.hold = Math.max(item.seconds * 1000, scrollMs);
    body.dataset.shownAt = String(current.started);
    record(current, 0);  // on screen now: coso learns it at once, the length comes after
  }

  function next(list) {
    var ids = list.map(function (i) { return i.id; });
    // after an emergency: the item it interrupted, before anything new
    if (!list.some(function (i) { return i.priority === "emergency"; }) && state.resume) {
      var back = ids.indexOf(state.resume);
      state.resume = null;
      save();
      if (back >= 0) { return list[back]; }
    }
    for (var n = 0; n < list.length; n++) {  // new items, in the programme's order
      if (isFresh(list[n].id)) { return list[n]; }
    }
    var from = current ? ids.indexOf(current.item.id) : -1;
    return list[(from + 1) % list.length];
  }

  function wakeAtNextStart(now) {
    var soonest = null;
    state.items.forEach(function (i) {
      var at = Date.parse(i.starts_at);
      if (at > now && (soonest === null || at < soonest)) { soonest = at; }
    });
    if (alarm) { clearTimeout(alarm); alarm = null; }
    if (soonest !== null && soonest - now < 60000) { alarm = setTimeout(tick, soonest - now); }
  }

  function tick() {
    var now = clockNow();
    wakeAtNextStart(now);
    var list = active(now);
    var urgent = list.length && list[0].priority === "emergency";
    if (current) {
      var still = list.some(function (i) { return i.id === current.item.id; });
      var done = now - current.started >= current.hold;
      var interrupted = urgent && current.item.priority !== "emergency";
      // an item that came (or began) while this one was on screen is shown at once; those
      // that came together go one after another, each for its time
      var jump = !urgent && current.item.priority !== "emergency" && fresh.some(function (f) {
        return f.since > current.started && list.some(function (i) { return i.id === f.id; });
      });
      if (interrupted) { state.resume = current.item.id; save(); }
      // an item cut before its time by one that came later goes again in its turn
      if (jump && !done) { fresh.push({ id: current.item.id, since: 0 }); }
      if (!still || done || interrupted || jump) {
        var was = current;
        finish();
        if (!list.length) { show(null); return; }
        var following = next(list);
        if (still && !done && following.id === was.item.id) { current = was; return; }
        start(following);
      }
      return;
    }
    if (list.length) { start(next(list)); } else if (body.dataset.showing !== "") { show(null); }
  }

  // --- coso ----------------------------------------------------------------------------
  function online(yes) {
    body.classList.toggle("offline", !yes);
    body.dataset.online = yes ? "1" : "0";
    document.getElementById("link").title = yes ? "đã kết nối" : "mất kết nối: vẫn hiện chương trình đã nhận";
  }

  function upload() {
    if (sending || !state.pending.length || !state.token) { return; }
    sending = true;
    var batch = state.pending.slice(0, 200);
    fetch(base + "/displayed", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Authorization": "Bearer " + state.token },
      body: JSON.stringify({ records: batch })
    }).then(function (r) { return r.json().then(function (j) { return { ok: r.ok || r.status === 422, j: j }; }); })
      .then(function (res) {
        sending = false;
        if (!res.ok) { return; }
        var done = {};
        (res.j.accepted || []).forEach(function (id) { done[id] = true; });
        (res.j.refused || []).forEach(function (x) { done[x.id] = true; });
        // a record still on screen is sent again at its end, with its length
        state.pending = state.pending.filter(function (p) { return !done[p.id] || !batch.some(function (b) { return b.id === p.id && b.seconds === p.seconds; }); });
        save();
        if (state.pending.length) { setTimeout(upload, 200); }
      })
      .catch(function () { sending = false; });
  }

  function connect() {
    if (source) { source.close(); }
    source = new EventSource(base + "/events?token=" + encodeURIComponent(state.token));
    source.addEventListener("programme", function (e) {
      online(true);
      try {
        var programme = JSON.parse(e.data);
        takeProgramme(programme.items || [], programme.generated_at);
      } catch (err) { /* a bad message changes nothing */ }
      upload();
    });
    source.onopen = function () { online(true); upload(); };
    source.onerror = function () {
      online(false);
      if (source.readyState === EventSource.CLOSED) { setTimeout(connect, 3000); }
    };
  }

  function pair() {
    body.classList.add("pairing");
    fetch(base + "/pair", { method: "POST" }).then(function (r) { return r.json(); }).then(function (j) {
      document.getElementById("code").textContent = j.code.slice(0, 3) + " " + j.code.slice(3);
      var wait = setInterval(function () {
        fetch(base + "/pair?claim=" + encodeURIComponent(j.claim)).then(function (r) { return r.json(); }).then(function (a) {
          if (a.token) {
            clearInterval(wait);
            state.token = a.token;
            save();
            body.classList.remove("pairing");
            connect();
          } else if (a.error) { clearInterval(wait); setTimeout(pair, 2000); }
        }).catch(function () { /* offline: ask again */ });
      }, 2000);
    }).catch(function () { setTimeout(pair, 5000); });
  }

  function clock() {
    var d = new Date();
    document.getElementById("clock").textContent =
      d.toLocaleTimeString("vi-VN", { hour: "2-digit", minute: "2-digit" }) + " · " + d.toLocaleDateString("vi-VN");
  }

  // The device says its network is gone: stop waiting on the stream (a dead link can look
  // open for minutes) and show the programme it has; back: connect, upload what it kept.
  window.addEventListener("offline", function () {
    if (source) { source.close(); source = null; }
    online(false);
  });
  window.addEventListener("online", function () {
    if (state.token) { connect(); }
    upload();
  });
  setInterval(tick, 250);
  setInterval(upload, 5000);
  setInterval(clock, 1000);
  clock();
  online(false);
  tick();
  if (state.token) { connect(); } else { pair(); }
  // Where the browser allows it (https, or this machine), the page itself is kept too, so a
  // screen restarted with no link opens it again.
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/boards/static/board-sw.js", { scope: "/boards/" }).catch(function () {});
  }
})();
