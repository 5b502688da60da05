/* 今日巡查: file today's patrol ("nothing found" or the features found) with POST /api/patrols;
   a second filing the same day is refused (409) until the surveyor chooses to amend it. */
(function () {
  "use strict";
  const text = JSON.parse(document.getElementById("gw-patrol-config").textContent);
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const status = document.getElementById("gw-patrol-status");
  const amendBox = document.getElementById("gw-patrol-amend-box");
  const mine = document.getElementById("gw-patrol-mine");
  let last = null;

  function body(result) {
    const units = document.getElementById("gw-patrol-units").value.trim();
    const out = {
      day: document.getElementById("gw-patrol-day").value,
      note: document.getElementById("gw-patrol-note").value,
      result: result,
    };
    if (units) out.units = units.split(/[,，\s]+/).filter(Boolean);
    if (result === "found") {
      const layer = document.getElementById("gw-patrol-layer").value;
      // feature numbers or survey ids (案件编号 …): the server looks them up
      out.features = document.getElementById("gw-patrol-ids").value.split(/[,，、\s]+/).filter(Boolean)
        .map((v) => ({ layer: layer, id: v }));
    }
    return out;
  }

  function shown(p) {
    const li = document.createElement("li");
    li.textContent = [p.day, p.result === "found" ? text.found : text.nothing, p.units.length + " " + text.cells]
      .concat(p.amends.length ? [text.amended] : []).concat(p.note ? [p.note] : []).join(" · ");
    return li;
  }

  const buttons = ["gw-patrol-nothing", "gw-patrol-found", "gw-patrol-amend"].map((id) => document.getElementById(id));
  let sending = false;

  // one filing at a time: the buttons are disabled while it is sent (a double tap files once)
  function send(payload) {
    if (sending) return;
    sending = true;
    buttons.forEach((b) => { b.disabled = true; });
    status.className = "";
    status.textContent = text.sending;
    amendBox.hidden = true;
    const lang = document.documentElement.lang.slice(0, 2);
    fetch("/api/patrols?lang=" + lang, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken },
      body: JSON.stringify(payload),
    }).then((resp) => resp.json().then((data) => ({ resp: resp, data: data }))).then(({ resp, data }) => {
      if (resp.status === 201) {
        status.textContent = text.ok.replace("{units}", data.units.length) + (data.late ? text.late : "");
        status.className = "ok";
        const none = mine.querySelector(".gw-none");
        if (none) none.remove();
        mine.appendChild(shown(data));
        return;
      }
      status.className = "error";
      if (resp.status === 409 && data.error === "patrol_already_filed") {
        status.textContent = text.filed;
        last = payload;
        amendBox.hidden = false;
        return;
      }
      status.textContent = text.failed + (data.message || resp.status);
    }).catch((err) => { status.className = "error"; status.textContent = text.failed + err; }).finally(() => {
      sending = false;
      buttons.forEach((b) => { b.disabled = false; });
    });
  }

  document.getElementById("gw-patrol-nothing").addEventListener("click", () => send(body("nothing_found")));
  document.getElementById("gw-patrol-found").addEventListener("click", () => send(body("found")));
  document.getElementById("gw-patrol-amend").addEventListener("click", () => {
    if (last) send(Object.assign({}, last, { amend: true }));
  });
})();
