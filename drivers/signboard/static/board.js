// A public board: takes the board's state from the agent's event stream (EventSource reconnects by itself;
// the agent sends the whole state on every connect), rotates its pages, fits every text to its box.
"use strict";
(function () {
  const board = document.getElementById("board");
  const pageEl = document.getElementById("page");
  const nowEl = document.getElementById("now");
  const linkEl = document.getElementById("link");
  const DAYS = ["Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật"];
  const EN_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
  let state = null;
  let offset = 0;
  let pages = [];
  let index = 0;
  let timer = null;
  const seen = new Set();
  window.boardEvents = [];

  function now() { return new Date(Date.now() + offset); }

  function part(opts, locale) {
    try {
      return new Intl.DateTimeFormat(locale || "vi-VN", Object.assign({ timeZone: state.tz }, opts)).format(now());
    } catch (e) {
      return new Intl.DateTimeFormat(locale || "vi-VN", opts).format(now());
    }
  }

  function weekday() { return EN_DAYS.indexOf(part({ weekday: "short" }, "en-US")) + 1; }
  function hhmm() { return part({ hour: "2-digit", minute: "2-digit", hour12: false }); }
  function dateText() {
    return DAYS[weekday() - 1] + ", " + part({ day: "2-digit", month: "2-digit", year: "numeric" });
  }

  function build() {
    if (state.emergency) return [{ kind: "emergency", id: "e:" + state.emergency.id }];
    const out = [];
    for (const kind of state.pages) {
      if (kind === "notices") {
        for (const n of state.notices) out.push({ kind: "notice", id: "n:" + n.id, n: n });
      } else if (kind === "schedule") {
        const today = weekday();
        const days = Array.from(new Set(state.schedule.map((e) => e.day)));
        days.sort((a, b) => ((a - today + 7) % 7) - ((b - today + 7) % 7));
        for (const d of days) {
          out.push({ kind: "schedule", id: "s:" + d, day: d, lines: state.schedule.filter((e) => e.day === d) });
        }
      } else if (kind === "clock") {
        out.push({ kind: "clock", id: "clock" });
      } else if (kind === "readings" && state.readings.length) {
        out.push({ kind: "readings", id: "readings" });
      }
    }
    if (!out.length) out.push({ kind: "clock", id: "clock" });
    return out;
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fits(e) { return e.scrollHeight <= e.clientHeight + 1 && e.scrollWidth <= e.clientWidth + 1; }

  function fit(e, maxPx) {
    let lo = 4;
    let hi = Math.max(4, maxPx);
    while (hi - lo > 0.5) {
      const mid = (lo + hi) / 2;
      e.style.fontSize = mid + "px";
      if (fits(e)) lo = mid; else hi = mid;
    }
    e.style.fontSize = lo + "px";
  }

  function render(p) {
    pageEl.className = "page " + p.kind;
    pageEl.textContent = "";
    let head = "";
    const body = el("div", "body fit");
    if (p.kind === "emergency") {
      const e = state.emergency;
      head = "KHẨN CẤP" + (e.title ? " · " + e.title : "");
      body.textContent = e.text || e.title || "";
    } else if (p.kind === "notice") {
      head = p.n.title;
      body.textContent = p.n.text;
    } else if (p.kind === "schedule") {
      head = "Lịch công tác lãnh đạo xã · " + DAYS[p.day - 1];
      for (const line of p.lines) {
        const row = el("div", "line");
        row.appendChild(el("span", "t", line.time));
        row.appendChild(document.createTextNode(" " + line.what + (line.who ? " · " + line.who : "") +
          (line.where ? " · " + line.where : "")));
        body.appendChild(row);
      }
    } else if (p.kind === "readings") {
      head = "Số liệu mới nhất";
      body.textContent = state.readings.map((r) => r.name + ": " + r.value + (r.unit ? " " + r.unit : "")).join("\n");
    } else {
      head = dateText();
      body.appendChild(el("div", "time", hhmm()));
    }
    if (head) {
      const h = el("div", "head fit", head);
      pageEl.appendChild(h);
      pageEl.appendChild(body);
      fit(h, pageEl.clientHeight * 0.25);
    } else {
      pageEl.appendChild(body);
    }
    fit(body, pageEl.clientHeight);
    board.dataset.page = p.id;
  }

  function show(i) {
    index = pages.length ? i % pages.length : 0;
    render(pages[index]);
    clearTimeout(timer);
    timer = setTimeout(() => show(index + 1), Math.max(2, state.rotate_s) * 1000);
  }

  function apply(next) {
    const current = pages[index] ? pages[index].id : null;
    state = next;
    offset = state.server_ts * 1000 - Date.now();
    pages = build();
    // a notice not seen before is shown at once (not on the first state: that is the whole board)
    const fresh = board.dataset.version === "0" ? -1 : pages.findIndex((p) => p.kind === "notice" && !seen.has(p.id));
    for (const p of pages) seen.add(p.id);
    const keep = pages.findIndex((p) => p.id === current);
    board.dataset.version = String(state.v);
    board.dataset.emergency = state.emergency ? "1" : "0";
    board.dataset.pages = pages.map((p) => p.id).join(",");
    show(fresh >= 0 ? fresh : keep >= 0 ? keep : 0);
    nowEl.textContent = hhmm();
    window.boardEvents.push({ v: state.v, emergency: !!state.emergency, at: Date.now() });
  }

  function tick() {
    if (!state) return;
    nowEl.textContent = hhmm();
    if (pages[index] && pages[index].kind === "clock") render(pages[index]);
  }

  function connect() {
    const es = new EventSource(location.pathname.replace(/\/+$/, "") + "/events");
    es.addEventListener("state", (e) => { linkEl.className = "link-ok"; apply(JSON.parse(e.data)); });
    es.onopen = () => { linkEl.className = "link-ok"; };
    es.onerror = () => {
      linkEl.className = "link-down";
      if (es.readyState === EventSource.CLOSED) { es.close(); setTimeout(connect, 3000); }
    };
  }

  window.addEventListener("resize", () => { if (state && pages.length) render(pages[index]); });
  setInterval(tick, 1000);
  connect();
}());
