/* gridwatch edit form: the one form that changes a survey feature -- from the map's popup and
   unit panel (gridwatch-map.js, gridwatch-mapcore.js), the feature list (/features) and the
   phone page (/field, gridwatch-field.js).  It reads one JSON block the view renders
   (web/editing.py), <script type="application/json" id="gw-edit-config">:

     api       the JSON API's root            lang     the page's language
     canEdit   whether the account may change features (surveyors and admins)
     layers    {name: {label, fields: [{name, kind, label, choices, status, editable}], requiredAny,
               needName}}: the fields a form shows, each by its kind -- the status and other
               vocabularies as a select, dates as date inputs, numbers as number inputs (sent as
               typed: the server refuses what a layer does not take); a new site needs one of the
               fields requiredAny, and the form says needName before sending without
     labels    the form's words, in the page's language

   A change is sent as PATCH /api/features/<layer>/<id> with the version the form was opened on;
   a newer version stored meanwhile answers 409 and nothing is overwritten: the form says so and
   offers to read the feature again.  A photo is made smaller in the browser (at most 1600 px, JPEG)
   before it is sent, keeping its EXIF time and position.  All text from survey data goes into the
   page with textContent, never as HTML. */
(function () {
  "use strict";
  const ns = (window.gridwatch = window.gridwatch || {});
  const node = document.getElementById("gw-edit-config");
  if (!node) return;
  const cfg = JSON.parse(node.textContent);
  const L10N = cfg.labels;
  const MAX_SIDE = 1600;
  const tokenNode = document.querySelector('meta[name="csrf-token"]');
  const csrfToken = tokenNode ? tokenNode.content : "";

  function el(tag, text, cls) {
    const n = document.createElement(tag);
    if (text !== undefined && text !== null) n.textContent = String(text);
    if (cls) n.className = cls;
    return n;
  }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (m, k) => (k in values ? String(values[k]) : m));
  }

  /* The message of an error answer in the page's language. */
  function message(body, fallback) {
    if (body && typeof body === "object") {
      const own = cfg.lang === "en" ? body.message_en : body.message_zh;
      if (own) return own;
      if (body.message) return body.message;
    }
    return fallback || L10N.failed;
  }

  /* fetch with the CSRF token and the page's language; resolves {ok, status, body} for any answer
     of the server, rejects {network: true} when no answer came (offline, timed out). */
  function send(method, url, body, timeoutMs) {
    const headers = { "X-CSRFToken": csrfToken, Accept: "application/json" };
    let payload = body;
    if (body && !(body instanceof FormData)) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs || 60000);
    const sep = url.indexOf("?") < 0 ? "?" : "&";
    return fetch(url + sep + "lang=" + cfg.lang, {
      method, headers, body: payload, credentials: "same-origin", signal: controller.signal,
    }).then(
      (r) => r.text().then((text) => {
        clearTimeout(timer);
        let parsed = null;
        try { parsed = text ? JSON.parse(text) : null; } catch (e) { parsed = null; }
        return { ok: r.ok, status: r.status, body: parsed };
      }),
      () => { clearTimeout(timer); throw { network: true }; },
    );
  }

  /* --- photos: EXIF read in the browser, made smaller with a canvas ------------------------- */

  /* The EXIF (APP1) segment of a JPEG: {start, end} of the whole segment and the TIFF block's
     offset, or null. */
  function exifSegment(view) {
    if (view.byteLength < 4 || view.getUint16(0) !== 0xffd8) return null;
    let at = 2;
    while (at + 4 <= view.byteLength) {
      const marker = view.getUint16(at);
      if ((marker & 0xff00) !== 0xff00 || marker === 0xffda) return null;
      const length = view.getUint16(at + 2);
      if (marker === 0xffe1 && at + 10 <= view.byteLength && view.getUint32(at + 4) === 0x45786966) {
        return { start: at, end: at + 2 + length, tiff: at + 10 };
      }
      at += 2 + length;
    }
    return null;
  }

  /* The entries of one TIFF IFD at `offset` (from `tiff`): [{tag, type, count, at}] (`at`: where
     the entry's value or its offset is). */
  function ifd(view, tiff, offset, little) {
    const out = [];
    if (tiff + offset + 2 > view.byteLength) return out;
    const n = view.getUint16(tiff + offset, little);
    for (let i = 0; i < n; i++) {
      const at = tiff + offset + 2 + i * 12;
      if (at + 12 > view.byteLength) break;
      out.push({ tag: view.getUint16(at, little), type: view.getUint16(at + 2, little), count: view.getUint32(at + 4, little), at: at + 8 });
    }
    return out;
  }

  function rationals(view, tiff, entry, little) {
    const base = tiff + view.getUint32(entry.at, little);
    const out = [];
    for (let i = 0; i < entry.count && base + i * 8 + 8 <= view.byteLength; i++) {
      const den = view.getUint32(base + i * 8 + 4, little);
      out.push(den ? view.getUint32(base + i * 8, little) / den : NaN);
    }
    return out;
  }

  /* What a JPEG's EXIF says: {lon, lat} (WGS-84, or null) and where its orientation is. */
  function readExif(buffer) {
    const view = new DataView(buffer);
    const seg = exifSegment(view);
    if (!seg) return null;
    const tiff = seg.tiff;
    const little = view.getUint16(tiff) === 0x4949;
    const first = view.getUint32(tiff + 4, little);
    const entries = ifd(view, tiff, first, little);
    const info = { segment: seg, orientationAt: null, position: null, little };
    const orient = entries.find((e) => e.tag === 0x0112);
    if (orient) info.orientationAt = orient.at;
    const gpsPointer = entries.find((e) => e.tag === 0x8825);
    if (gpsPointer) {
      const gps = ifd(view, tiff, view.getUint32(gpsPointer.at, little), little);
      const tag = (t) => gps.find((e) => e.tag === t);
      const ref = (t) => { const e = tag(t); return e ? String.fromCharCode(view.getUint8(e.at)) : ""; };
      const deg = (t) => { const e = tag(t); if (!e) return NaN; const [d, m, s] = rationals(view, tiff, e, little); return d + (m || 0) / 60 + (s || 0) / 3600; };
      let lat = deg(2), lon = deg(4);
      if (ref(1) === "S") lat = -lat;
      if (ref(3) === "W") lon = -lon;
      if (isFinite(lat) && isFinite(lon) && Math.abs(lat) <= 90 && Math.abs(lon) <= 180 && (lat !== 0 || lon !== 0)) {
        info.position = { lon, lat };
      }
    }
    return info;
  }

  /* The GPS position a photo file's EXIF gives ({lon, lat}, WGS-84), or null. */
  function photoPosition(file) {
    return file.arrayBuffer().then((buffer) => {
      try { const info = readExif(buffer); return info ? info.position : null; } catch (e) { return null; }
    });
  }

  /* A photo made smaller for a slow connection: at most MAX_SIDE pixels on its long side, JPEG,
     drawn upright, with the original EXIF (its orientation set to upright) so the server still
     reads when and where it was taken. */
  function resizePhoto(file) {
    return Promise.all([file.arrayBuffer(), createImageBitmap(file, { imageOrientation: "from-image" })])
      .then(([buffer, bitmap]) => {
        const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
        const canvas = document.createElement("canvas");
        canvas.width = Math.max(1, Math.round(bitmap.width * scale));
        canvas.height = Math.max(1, Math.round(bitmap.height * scale));
        canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
        if (bitmap.close) bitmap.close();
        return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85)).then((blob) => {
          let info = null;
          try { info = readExif(buffer); } catch (e) { info = null; }
          if (!info) return blob;
          const exif = new Uint8Array(buffer.slice(info.segment.start, info.segment.end));
          if (info.orientationAt !== null) {
            new DataView(exif.buffer).setUint16(info.orientationAt - info.segment.start, 1, info.little);
          }
          return blob.arrayBuffer().then((made) => new Blob(
            [new Uint8Array(made, 0, 2), exif, new Uint8Array(made, 2)], { type: "image/jpeg" }));
        });
      });
  }

  /* --- the form ------------------------------------------------------------------------------ */

  function input(field, value) {
    let box;
    if (field.choices) {
      box = el("select");
      const empty = el("option", "—");
      empty.value = "";
      box.appendChild(empty);
      field.choices.forEach((c) => {
        const o = el("option", c.label);
        o.value = c.code;
        box.appendChild(o);
      });
      if (value !== null && value !== undefined && !field.choices.some((c) => c.code === value)) {
        const o = el("option", String(value)); // a value outside the vocabulary stays as it is
        o.value = String(value);
        box.appendChild(o);
      }
    } else {
      box = el("input");
      box.type = field.kind === "date" ? "date" : field.kind === "str" ? "text" : "number";
      if (field.kind === "int") box.step = "1";
      if (field.kind === "float") box.step = "any";
      if (field.kind !== "date" && field.kind !== "str") box.inputMode = field.kind === "int" ? "numeric" : "decimal";
      if (field.kind === "str") box.maxLength = 200;
    }
    box.name = field.name;
    box.value = value === null || value === undefined ? "" : String(value).slice(0, field.kind === "date" ? 10 : undefined);
    return box;
  }

  /* What a box holds, as typed (a number too: "2.5" in a count, "1e309" are the server's to
     refuse, never rounded or made null here); null when empty. */
  function fieldValue(field, box) {
    const raw = box.value.trim();
    if (raw === "") return null;
    return raw;
  }

  function same(field, stored, value) {
    const empty = (v) => v === null || v === undefined || v === "";
    if (empty(stored) || empty(value)) return empty(stored) && empty(value);
    if (field.kind === "int" || field.kind === "float") return Number(stored) === Number(value);
    if (field.kind === "date") return String(stored).slice(0, 10) === String(value);
    return String(stored) === String(value);
  }

  /* The edit (or add) form of one feature.
     opts: {layer, props (the feature's detail properties: id, version and its fields; {} to add),
            add: {lon, lat} to add a feature there, photo: offer a photo, onSaved(result, props),
            onReload() (a 409's "read it again"), compact: a one-line note (a popup)} */
  function form(opts) {
    const spec = cfg.layers[opts.layer];
    const adding = Boolean(opts.add);
    const props = Object.assign({}, opts.props || {});
    const root = el("form", null, "gw-edit" + (adding ? " gw-edit-add" : ""));
    root.noValidate = true;
    if (!spec || !cfg.canEdit) return null;
    // an edit shows the status, dates and numbers; a new site its survey id, address ... first
    const shown = adding ? [...spec.fields.filter((f) => !f.editable), ...spec.fields.filter((f) => f.editable)]
      : spec.fields.filter((f) => f.editable);
    const boxes = {};
    shown.forEach((f) => {
      const row = el("label", null, "gw-edit-row");
      row.appendChild(el("span", f.label, "gw-edit-label"));
      const box = input(f, adding ? (f.status ? spec.defaultStatus : null) : props[f.name]);
      box.classList.add("gw-edit-input");
      boxes[f.name] = box;
      row.appendChild(box);
      root.appendChild(row);
    });
    const noteRow = el("label", null, "gw-edit-row gw-edit-note");
    noteRow.appendChild(el("span", L10N.note, "gw-edit-label"));
    const note = el("textarea");
    note.name = "note";
    note.maxLength = 500;
    note.rows = opts.compact ? 1 : 2;
    noteRow.appendChild(note);
    root.appendChild(noteRow);
    let photo = null;
    if (opts.photo) {
      const photoRow = el("label", null, "gw-edit-row gw-edit-photo");
      photoRow.appendChild(el("span", L10N.photo, "gw-edit-label"));
      photo = el("input");
      photo.type = "file";
      photo.name = "photo";
      photo.accept = "image/jpeg,image/png,image/webp";
      photo.setAttribute("capture", "environment");
      photoRow.appendChild(photo);
      root.appendChild(photoRow);
    }
    const buttons = el("div", null, "gw-edit-buttons");
    const save = el("button", adding ? L10N.add : L10N.save, "gw-edit-save");
    save.type = "submit";
    buttons.appendChild(save);
    root.appendChild(buttons);
    const status = el("div", null, "gw-edit-message");
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    root.appendChild(status);

    let pendingPhoto = null; // a photo still to send after the fields were saved
    let busy = false;

    function say(text, kind, action) {
      status.replaceChildren();
      status.className = "gw-edit-message" + (kind ? " gw-edit-" + kind : "");
      status.appendChild(el("span", text));
      if (action) {
        const b = el("button", action.label, "gw-edit-action");
        b.type = "button";
        b.addEventListener("click", action.run);
        status.appendChild(document.createTextNode(" "));
        status.appendChild(b);
      }
      if (kind && kind !== "busy" && root.isConnected) status.scrollIntoView({ block: "nearest" }); // seen in a popup that scrolls
    }

    /* A request refused or lost.  `savedFirst`: the fields were saved, the photo after them
       failed -- the form says both. */
    function failed(answer, retry, savedFirst) {
      busy = false;
      save.disabled = false;
      const tell = (text, action) => say(savedFirst ? fill(L10N.savedPhotoFailed, { reason: text }) : text, "error", action);
      if (answer && answer.network) {
        tell(L10N.network, { label: L10N.retry, run: retry });
      } else if (answer.status === 409) {
        const current = answer.body && (answer.body.current_version || (answer.body.details || {}).current_version);
        tell(fill(L10N.conflict, { version: current || "?" }),
          opts.onReload ? { label: L10N.reload, run: () => opts.onReload() } : null);
        save.disabled = true; // nothing is sent over a newer version
      } else if (answer.status === 403) {
        tell(message(answer.body, L10N.forbidden));
      } else if (answer.status === 401) {
        tell(L10N.signIn);
      } else if (answer.status >= 500) {
        tell(message(answer.body, L10N.failed), { label: L10N.retry, run: retry });
      } else {
        tell(message(answer.body, L10N.failed));
      }
    }

    /* What the form cannot send as it is (a number box holding no number, a new site without
       its id or address), or null. */
    function unsendable(fields) {
      const bad = shown.find((f) => boxes[f.name].validity && boxes[f.name].validity.badInput);
      if (bad) return fill(L10N.badNumber, { field: bad.label });
      if (adding && spec.requiredAny && spec.requiredAny.length
        && spec.requiredAny.every((name) => fields[name] === undefined || fields[name] === null)) {
        return spec.needName;
      }
      return null;
    }

    function changed() {
      const out = {};
      shown.forEach((f) => {
        const value = fieldValue(f, boxes[f.name]);
        if (adding ? value !== null : !same(f, props[f.name], value)) out[f.name] = value;
      });
      return out;
    }

    function sendPhoto(file, done, savedFirst) {
      say(L10N.sendingPhoto, "busy");
      resizePhoto(file).then((blob) => {
        const data = new FormData();
        data.append("file", blob, (file.name || "photo").replace(/\.[^.]*$/, "") + ".jpg");
        if (props.version) data.append("version", String(props.version));
        const text = note.value.trim();
        if (text) data.append("note", text);
        return send("POST", cfg.api + "/features/" + opts.layer + "/" + props.id + "/photos", data, 120000);
      }).then((answer) => {
        if (!answer.ok) return failed(answer, run, savedFirst);
        pendingPhoto = null;
        if (photo) photo.value = "";
        done(answer.body);
      }, (err) => failed(err && err.network ? err : { status: 400, body: { message: L10N.badPhoto } }, run, savedFirst));
    }

    function finish(result) {
      busy = false;
      save.disabled = false;
      note.value = "";
      say(adding ? L10N.added : L10N.saved, "ok");
      if (opts.onSaved) opts.onSaved(result, props);
    }

    function run() {
      if (busy) return;
      const fields = changed();
      const file = pendingPhoto || (photo && photo.files[0]) || null;
      const text = note.value.trim();
      const cannot = adding && props.id ? null : unsendable(fields);
      if (cannot) {
        say(cannot, "error");
        return;
      }
      if (!adding && !Object.keys(fields).length && !file && !text) {
        say(L10N.nothing, "");
        return;
      }
      busy = true;
      save.disabled = true;
      say(L10N.saving, "busy");
      const afterFields = (result, savedFirst) => {
        if (file) {
          pendingPhoto = file;
          sendPhoto(file, (photoAnswer) => finish(Object.assign({ photo: photoAnswer }, result)), savedFirst);
        } else {
          finish(result);
        }
      };
      if (adding) {
        if (props.id) return afterFields({ id: props.id, version: props.version }); // added; the photo failed
        const body = { geometry: { type: "Point", coordinates: [opts.add.lon, opts.add.lat] }, fields };
        if (text) body.note = text;
        send("POST", cfg.api + "/features/" + opts.layer, body).then((answer) => {
          if (!answer.ok) return failed(answer, run);
          props.id = answer.body.id;
          props.version = answer.body.version;
          afterFields(answer.body, true);
        }, (err) => failed(err, run));
        return;
      }
      if (!Object.keys(fields).length && file) return afterFields({ id: props.id, version: props.version });
      const body = { version: props.version, fields };
      if (text) body.note = text;
      send("PATCH", cfg.api + "/features/" + opts.layer + "/" + props.id, body).then((answer) => {
        if (!answer.ok) return failed(answer, run);
        Object.assign(props, fields, { version: answer.body.version });
        afterFields(answer.body, true);
      }, (err) => failed(err, run));
    }

    // a photo chosen anew, or cleared, ends what the form said of the one before: it is not sent
    // again after the next save (a field changed then is saved and said to be, on its own)
    if (photo) {
      photo.addEventListener("change", () => {
        pendingPhoto = null;
        if (!busy) say("", "");
      });
    }
    // a button that goes from the page as it is clicked (retry, reload) must not be taken for a
    // click on what lies under the form (a map closes its popup on a click of its own)
    root.addEventListener("click", (e) => e.stopPropagation());
    root.addEventListener("submit", (e) => {
      e.preventDefault();
      run();
    });
    root.gwSay = say;
    return root;
  }

  /* The edit form of feature `id` of `layer` in `holder`, made from the feature read again (its
     current version): opts {onSaved(result, props), resized() after the holder changed size,
     crs (a query string such as "?crs=gcj02")}.  A failed read says so and offers to try again;
     a 409 reads the feature again and makes the form anew. */
  function open(holder, layer, id, opts) {
    const o = opts || {};
    const resized = () => { if (o.resized) o.resized(); };
    const again = () => open(holder, layer, id, o);
    holder.replaceChildren(el("p", L10N.loading || "…"));
    send("GET", cfg.api + "/features/" + layer + "/" + id + (o.crs || ""), null, 20000).then((answer) => {
      if (!answer.ok) {
        holder.replaceChildren(el("p", message(answer.body, L10N.failed), "gw-edit-error"));
        resized();
        return;
      }
      const props = Object.assign({}, answer.body.properties);
      if (props.id === undefined) props.id = props.fid;
      if (props.version === undefined) props.version = 1;
      const made = form({ layer, props, photo: true, onReload: again, onSaved: o.onSaved, compact: o.compact });
      // which feature: its survey id (the first text field a form does not change) above the form
      const named = cfg.layers[layer].fields.find((f) => !f.editable && props[f.name]);
      if (named) made.prepend(el("div", named.label + " " + props[named.name], "gw-edit-title"));
      holder.replaceChildren(made);
      resized();
      made.scrollIntoView({ block: "nearest" }); // in a popup that scrolls, the form in view
    }, () => {
      const retry = el("button", L10N.retry, "gw-edit-action");
      retry.type = "button";
      retry.addEventListener("click", (e) => { e.stopPropagation(); again(); });
      holder.replaceChildren(el("span", L10N.network, "gw-edit-error"), document.createTextNode(" "), retry);
      resized();
    });
  }

  ns.edit = { config: cfg, form, open, send, message, resizePhoto, photoPosition, readExif };
})();
