// Reads the meeting page against one platform table. Evaluated as
// `(PROBE)(table)`; marks the elements Rust will act on with data-attache.
(table) => {
  // The page's own pulse: a timer that should fire every 250 ms. How late
  // it has been since the last read is how long the page's main thread was
  // starved or hung, even when this read itself was answered in time.
  const now = performance.now();
  const pulse = window.__attachePulse || (window.__attachePulse = { last: now, worst: 0 });
  if (!pulse.timer) {
    pulse.timer = setInterval(() => {
      const t = performance.now();
      pulse.worst = Math.max(pulse.worst, t - pulse.last - 250);
      pulse.last = t;
    }, 250);
  }
  const lagMs = Math.max(0, Math.round(Math.max(pulse.worst, now - pulse.last - 250)));
  pulse.worst = 0;
  const fold = (s) => (s || '').replace(/[\u2018\u2019]/g, "'").toLowerCase();
  // The client may run in a frame of the page (Zoom's iframe#webclient):
  // then that frame's document is the one read and acted on.
  let root = document;
  for (const sel of table.frames) {
    const frame = document.querySelector(sel);
    try {
      if (frame && frame.contentDocument && frame.contentDocument.body) { root = frame.contentDocument; break; }
    } catch (e) { /* another origin's frame is not the client */ }
  }
  const visible = (el) => !!el && (el.offsetWidth > 0 || el.offsetHeight > 0 || el.getClientRects().length > 0);
  const first = (sels) => {
    for (const s of sels) {
      for (const el of root.querySelectorAll(s)) if (visible(el)) return el;
    }
    return null;
  };
  const button = (labels) => {
    // A radio already chosen is not to be clicked again.
    const all = [...root.querySelectorAll('button, [role="button"], [role="radio"]')]
      .filter((b) => visible(b) && !(b.getAttribute('role') === 'radio' && b.getAttribute('aria-checked') === 'true'));
    for (const l of labels) {
      const want = fold(l);
      const b = all.find((b) => fold(b.innerText).trim() === want || fold(b.getAttribute('aria-label')) === want);
      if (b) return b;
    }
    return null;
  };
  const mark = (el, name) => {
    for (const old of root.querySelectorAll(`[data-attache="${name}"]`)) if (old !== el) old.removeAttribute('data-attache');
    if (el) el.setAttribute('data-attache', name);
    return !!el;
  };
  // Every match of every selector, once each, in document order.
  const all = (sels) => {
    const seen = new Set();
    const out = [];
    for (const s of sels) {
      let found;
      try { found = root.querySelectorAll(s); } catch (e) { continue; }
      for (const el of found) if (!seen.has(el)) { seen.add(el); out.push(el); }
    }
    return out.sort((a, b) => (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1));
  };
  const within = (el, sels) => {
    for (const s of sels) {
      try {
        if (el.matches(s)) return el;
        const inner = el.querySelector(s);
        if (inner) return inner;
      } catch (e) { /* a selector this browser does not know */ }
    }
    return null;
  };
  const attr = (el, names) => {
    for (const n of names) { const v = el.getAttribute(n); if (v) return v; }
    return '';
  };
  const textOf = (el, sels) => {
    const inner = sels.length ? within(el, sels) : null;
    return ((inner || el).innerText || (inner || el).textContent || '').trim().slice(0, 4000);
  };
  // Only what is on screen: a closed panel's entries are not read (and
  // its button is clicked).
  const entries = all(table.people.items).filter(visible);
  const messages = all(table.chat.items).filter(visible);
  // What participants wrote or are called is theirs, not the platform's:
  // the roster's entries and the chat's messages. A status text counts
  // only where it is still in the visible text of `scopes` with theirs
  // taken out (worked out only once some text matched at all).
  const theirs = new Map();
  const theirElements = entries.concat(messages);
  const ownText = (el) => {
    if (!theirs.has(el)) theirs.set(el, fold(el.innerText).trim());
    return theirs.get(el);
  };
  const saying = (scopes) => {
    const raw = scopes.map((s) => fold(s.innerText));
    let platforms = null;
    return (list) => list.some((t) => {
      const want = fold(t);
      if (!raw.some((r) => r.includes(want))) return false;
      platforms = platforms || raw.map((text, i) => {
        for (const el of theirElements) {
          const own = scopes[i].contains(el) ? ownText(el) : '';
          const at = own ? text.indexOf(own) : -1;
          if (at !== -1) text = text.slice(0, at) + text.slice(at + own.length);
        }
        return text;
      });
      return platforms.some((r) => r.includes(want));
    });
  };
  // A lobby says so anywhere on its page; endings, refusals and walls are
  // read only in the platform's own dialog and status elements (the
  // outermost of nested ones), never in a title, a caption or a shared
  // screen.
  const onPage = saying(root.body ? [root.body] : []);
  const areas = all(table.status_areas).filter(visible);
  const inStatus = saying(areas.filter((a) => !areas.some((b) => b !== a && b.contains(a))));
  const nameOf = (el) => {
    const inner = within(el, table.people.names);
    const label = inner ? '' : attr(el, table.people.name_attrs).split(',')[0];
    return (label || textOf(el, table.people.names)).split('\n')[0].trim();
  };
  const notPerson = (el) => {
    const label = fold(`${el.getAttribute('aria-label') || ''} ${el.innerText || ''}`);
    return table.people.not_people.some((t) => label.includes(fold(t)));
  };
  // Names on the tiles that show who speaks now, where those are apart
  // from the roster.
  const talking = new Set(all(table.people.speaker_tiles).filter(visible)
    .map((el) => textOf(el, table.people.speaker_names).split('\n')[0].trim()).filter(Boolean));
  const people = entries.filter((el) => !notPerson(el)).slice(0, 500).map((el) => {
    const name = nameOf(el).slice(0, 256);
    return {
      id: attr(el, table.people.id_attrs).slice(0, 256),
      name,
      self: !!within(el, table.people.self_markers),
      speaking: !!within(el, table.people.speaking) || talking.has(name),
    };
  });
  const chat = messages.slice(-100).map((el, i) => {
    const sender = textOf(el, table.chat.senders).split('\n')[0].slice(0, 256);
    const body = textOf(el, table.chat.texts);
    // Without a platform id, a message is its sender, text and place.
    const id = attr(el, table.chat.id_attrs) || `${sender}\u0000${body}\u0000${Math.max(0, messages.length - 100) + i}`;
    return { id: id.slice(0, 256), sender, text: body };
  });
  // How many the platform says are in the call, where it says so.
  const counted = first(table.people.count);
  const number = counted && /\d+/.exec(`${counted.getAttribute('aria-label') || ''} ${counted.innerText || ''}`);
  const nameInput = first(table.name_inputs);
  const joinButton = button(table.join_buttons);
  const lobby = onPage(table.lobby_texts);
  return {
    name_input: mark(nameInput && !nameInput.value ? nameInput : null, 'name'),
    name_filled: !!nameInput && !!nameInput.value,
    join_button: mark(joinButton, 'join'),
    pre_join_button: mark(button(table.pre_join_buttons), 'prejoin'),
    mic_on: mark(first(table.mic_on), 'mic'),
    camera_on: mark(first(table.camera_on), 'camera'),
    lobby,
    // The call's own controls with no join button left (lobbies show call
    // controls too, Meet's "Leave call": admission also needs no lobby text).
    call_controls: !joinButton && table.in_call_all.every((s) => !!first([s]))
      && (!table.people.proves_call || people.length > 0),
    leave_button: mark(first(table.leave_buttons), 'leave'),
    leave_confirm: mark(first(table.leave_confirm), 'confirm'),
    notice: mark(first(table.notices), 'notice'),
    chat_button: mark(messages.length ? null : button(table.chat.open_buttons), 'chat'),
    people_button: mark(entries.length ? null : button(table.people.open_buttons), 'people'),
    denied: inStatus(table.denied_texts),
    removed: inStatus(table.removed_texts),
    ended: inStatus(table.ended_texts) || !!first(table.ended_screens),
    not_found: inStatus(table.not_found_texts),
    sign_in: inStatus(table.sign_in_texts) || !!first(table.sign_in_screens),
    blocked: inStatus(table.blocked_texts),
    passcode: inStatus(table.passcode_texts),
    people,
    people_count: number ? Math.min(Number(number[0]), 100000) : null,
    chat,
    lag_ms: lagMs,
    framed: root !== document,
  };
}
