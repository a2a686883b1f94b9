// Reads the meeting page against one platform table. Evaluated as
// `(PROBE)(table)`; marks the elements Rust will act on with data-attache.
(table) => {
  const fold = (s) => (s || '').replace(/[\u2018\u2019]/g, "'").toLowerCase();
  const text = fold(document.body ? document.body.innerText : '');
  const has = (list) => list.some((t) => text.includes(fold(t)));
  const visible = (el) => !!el && (el.offsetWidth > 0 || el.offsetHeight > 0 || el.getClientRects().length > 0);
  const first = (sels) => {
    for (const s of sels) {
      for (const el of document.querySelectorAll(s)) if (visible(el)) return el;
    }
    return null;
  };
  const button = (labels) => {
    const all = [...document.querySelectorAll('button, [role="button"]')].filter(visible);
    for (const l of labels) {
      const want = fold(l);
      const b = all.find((b) => fold(b.innerText).trim() === want || fold(b.getAttribute('aria-label')) === want);
      if (b) return b;
    }
    return null;
  };
  const mark = (el, name) => {
    for (const old of document.querySelectorAll(`[data-attache="${name}"]`)) if (old !== el) old.removeAttribute('data-attache');
    if (el) el.setAttribute('data-attache', name);
    return !!el;
  };
  const nameInput = first(table.name_inputs);
  return {
    name_input: mark(nameInput && !nameInput.value ? nameInput : null, 'name'),
    name_filled: !!nameInput && !!nameInput.value,
    join_button: mark(button(table.join_buttons), 'join'),
    pre_join_button: mark(button(table.pre_join_buttons), 'prejoin'),
    lobby: has(table.lobby_texts),
    in_call: table.in_call_all.every((s) => !!first([s])),
    leave_button: mark(first(table.leave_buttons), 'leave'),
    denied: has(table.denied_texts),
    removed: has(table.removed_texts),
    ended: has(table.ended_texts),
    not_found: has(table.not_found_texts),
    sign_in: has(table.sign_in_texts),
    blocked: has(table.blocked_texts),
  };
}
