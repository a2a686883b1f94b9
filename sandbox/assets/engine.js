// The sandbox meeting's behaviour, shared by every page shape: the
// sandbox's own page and the replicas of Meet, Teams and Zoom. A page is
// its markup, which marks the parts the engine works with, and a skin
// (`window.SKIN`, set before this script) that draws roster entries, chat
// messages and speaking, and says each ending in the platform's words:
//
//   [data-screen=launcher|lobby|waiting|call|outcome]  one shown at a time
//   [data-role=name|join|mic|camera|devices|join-controls|lobby-error]
//   [data-role=leave]            every leave button
//   [data-confirm=SELECTOR]      a leave button that first shows this
//                                confirmation (whose own button leaves)
//   [data-role=people|chat]      where entries and messages go
//   [data-role=people-count]     where the page says how many are in the
//                                call (drawn by SKIN.count), if it does
//   [data-role=outcome-text]     where an ending is said
//   [data-role=continue]         the launcher's way on to the lobby
//   [data-role=passcode]         the passcode field, when one is asked for
//   [data-gate=audio]            must be clicked (or checked) before the
//                                page receives any audio
//   [data-open=X] / [data-panel=X]  a button and the panel it shows
//   [data-overlay=cookies] / [data-overlay=notice]  with ?overlays=true
//   [data-overlay=in-call]       with ?overlays=true, a notice shown a
//                                second into the call until one of its
//                                buttons is clicked
//
// Skin: { texts: { not_found, ended, denied, removed, left, sign_in, bots,
// passcode_missing, passcode_wrong }, entry(p, self), speaking(el, on),
// message(m), devices(state), count(el, n) where the page has a
// people-count, and optionally outcome(kind) to draw an ending's own
// screen }.
(() => {
  const SKIN = window.SKIN;
  const $ = (sel) => document.querySelector(sel);
  const $$ = (sel) => [...document.querySelectorAll(sel)];
  const role = (name) => $(`[data-role="${name}"]`);
  const id = decodeURIComponent(location.pathname.split('/').pop());
  const pwd = new URLSearchParams(location.search).get('pwd');
  const api = (path, body) => fetch(`/api/meetings/${encodeURIComponent(id)}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  const show = (name) => $$('[data-screen]').forEach((s) => { s.hidden = s.dataset.screen !== name; });
  let seat = null;
  let meeting = null;
  let media = null;
  // performance.now() at the moment the call started, from the first
  // admitted poll's elapsed_ms.
  let callStart = null;
  let corruptSent = false;
  // Scripted participants' ids by name, from the latest poll.
  const castIds = new Map();
  // Roster entries by participant id.
  const entries = new Map();
  const MAX_MESSAGES = 500;

  const finish = (kind) => {
    role('outcome-text').textContent = SKIN.texts[kind];
    if (SKIN.outcome) SKIN.outcome(kind);
    show('outcome');
    stopMedia();
    stopDevices();
  };

  // Panels open and close with their buttons.
  for (const b of $$('[data-open]')) {
    b.addEventListener('click', () => {
      const panel = $(`[data-panel="${b.dataset.open}"]`);
      if (panel) panel.hidden = !panel.hidden;
    });
  }
  // Gates (a permission dialog's "Allow", an audio choice) are passed once.
  for (const g of $$('[data-gate]')) {
    g.addEventListener('click', () => {
      g.dataset.done = 'true';
      if (g.getAttribute('role') === 'radio') g.setAttribute('aria-checked', 'true');
      if (g.dataset.dismiss) $(g.dataset.dismiss).hidden = true;
    });
  }
  const audioGated = () => $$('[data-gate="audio"]').some((g) => g.dataset.done !== 'true');
  const launcher = role('continue');
  // Only from the launcher: a click that lands after an ending changes
  // nothing.
  const shown = () => $$('[data-screen]').find((s) => !s.hidden);
  if (launcher) {
    launcher.addEventListener('click', () => {
      if (shown() && shown().dataset.screen === 'launcher') show('lobby');
    });
  }

  // The page's own microphone and camera, asked for as a platform's
  // pre-join screen does (one request each) and on at first when there is
  // one. In the call the sandbox measures what they send: the microphone's
  // loudest moment while on, and the camera's frames while on.
  const devices = { mic: null, camera: null, micOn: false, cameraOn: false, peak: 0, frames: 0, stops: [] };
  const ask = (c) => navigator.mediaDevices.getUserMedia(c).catch(() => null);
  const devicesReady = (async () => {
    devices.mic = await ask({ audio: true });
    devices.camera = await ask({ video: true });
    devices.micOn = !!devices.mic;
    devices.cameraOn = !!devices.camera;
  })();
  for (const key of ['mic', 'camera']) {
    const el = role(key);
    if (!el) continue;
    el.addEventListener('click', () => {
      if (!devices[key]) return;
      const on = !devices[key + 'On'];
      devices[key + 'On'] = on;
      for (const t of devices[key].getTracks()) t.enabled = on;
      SKIN.devices(devices);
    });
  }
  const uplink = () => ({
    mic_on: devices.micOn, camera_on: devices.cameraOn,
    audio_peak: devices.peak, video_frames: devices.frames,
    notices_open: $$('[data-overlay="in-call"]').some((n) => !n.hidden),
  });
  function meterDevices() {
    if (devices.metering) return;
    devices.metering = true;
    if (devices.micOn && devices.mic) {
      const ctx = new AudioContext();
      const analyser = ctx.createAnalyser();
      analyser.fftSize = 32768;
      ctx.createMediaStreamSource(devices.mic).connect(analyser);
      const buf = new Float32Array(analyser.fftSize);
      const timer = setInterval(() => {
        if (!devices.micOn) return;
        analyser.getFloatTimeDomainData(buf);
        let sum = 0;
        for (const v of buf) sum += v * v;
        devices.peak = Math.max(devices.peak, Math.sqrt(sum / buf.length));
      }, 250);
      devices.stops.push(() => { clearInterval(timer); ctx.close().catch(() => {}); });
    }
    const video = devices.camera && devices.camera.getVideoTracks()[0];
    if (devices.cameraOn && video && typeof MediaStreamTrackProcessor === 'function') {
      const reader = new MediaStreamTrackProcessor({ track: video }).readable.getReader();
      (async () => {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          if (devices.cameraOn) devices.frames++;
          value.close();
        }
      })().catch(() => {});
      devices.stops.push(() => reader.cancel().catch(() => {}));
    }
  }
  function stopDevices() {
    for (const stop of devices.stops.splice(0)) stop();
    for (const s of [devices.mic, devices.camera]) if (s) for (const t of s.getTracks()) t.stop();
  }

  // Milliseconds since the call started.
  const callNow = () => performance.now() - callStart;

  // The script's speech as a timeline: when each utterance starts (k-th
  // repetition) and how long its clip plays.
  function occurrence(u, k) {
    const start = u.at_ms + k * (meeting.script.repeat_ms || 0);
    return { start, end: start + (meeting.clip_ms[u.clip] || 0) };
  }

  // Who is speaking at `t`: the latest occurrence of each utterance that has
  // started, if it has not ended. Repetitions never overlap (the server
  // keeps every clip within one period).
  function speakingAt(t) {
    const out = new Set();
    const script = meeting && meeting.script;
    if (!script || callStart === null) return out;
    for (const u of script.speech) {
      if (t < u.at_ms) continue;
      const k = script.repeat_ms ? Math.floor((t - u.at_ms) / script.repeat_ms) : 0;
      const o = occurrence(u, k);
      if (t >= o.start && t < o.end) out.add(u.speaker);
    }
    return out;
  }

  const speakingNow = new Set();
  function renderSpeaking() {
    const now = speakingAt(callNow());
    const ids = new Set([...now].map((name) => castIds.get(name)).filter(Boolean));
    for (const [pid, el] of entries) {
      const on = ids.has(pid);
      if (on === speakingNow.has(pid)) continue;
      if (on) speakingNow.add(pid); else speakingNow.delete(pid);
      SKIN.speaking(el, on);
    }
  }
  setInterval(renderSpeaking, 50);

  // The scripted speakers' voices: each clip is decoded once, every speaker
  // gets a MediaStreamAudioDestinationNode of their own, and each
  // destination's track goes through a pair of RTCPeerConnections, so the
  // page receives one remote audio track per speaker, as on a real
  // platform. Utterances are scheduled on the AudioContext's clock from the
  // same timeline as the speaking indicators.
  async function startMedia() {
    const script = meeting.script;
    const speakers = [...new Set(script.speech.map((u) => u.speaker))];
    if (!speakers.length) return null;
    if (meeting.speakers === 'remote') return startRemoteMedia(speakers);
    const ctx = new AudioContext({ sampleRate: 48000 });
    const state = { ctx, pcs: [], timer: null };
    media = state;
    const stop = () => {
      clearInterval(state.timer);
      for (const pc of state.pcs) pc.close();
      ctx.close().catch(() => {});
    };
    state.stop = stop;
    const clips = [...new Set(script.speech.map((u) => u.clip))];
    const buffers = new Map(await Promise.all(clips.map(async (name) => {
      const r = await fetch(`/media/${encodeURIComponent(name)}.ogg`);
      if (!r.ok) throw new Error(`clip ${name}: ${r.status}`);
      return [name, await ctx.decodeAudioData(await r.arrayBuffer())];
    })));
    const pc1 = new RTCPeerConnection();
    const pc2 = new RTCPeerConnection();
    state.pcs = [pc1, pc2];
    pc1.onicecandidate = (e) => e.candidate && pc2.addIceCandidate(e.candidate);
    pc2.onicecandidate = (e) => e.candidate && pc1.addIceCandidate(e.candidate);
    pc2.ontrack = (e) => {
      const a = document.createElement('audio');
      a.srcObject = e.streams[0] || new MediaStream([e.track]);
      a.autoplay = true;
      document.body.appendChild(a);
    };
    const muted = meeting.audio === 'muted';
    const inputs = new Map();
    // With `mix`, a server-mixed track of every voice as well, its stream
    // named as Teams names it.
    let mix = null;
    if (meeting.mix !== 'none') {
      mix = ctx.createMediaStreamDestination();
      const level = ctx.createGain();
      level.gain.value = meeting.mix === 'silent' || muted ? 0 : 1;
      level.connect(mix);
      mix.input = level;
      for (const t of mix.stream.getAudioTracks()) pc1.addTrack(t, mix.stream);
    }
    for (const speaker of speakers) {
      const dest = ctx.createMediaStreamDestination();
      const gain = ctx.createGain();
      gain.gain.value = muted ? 0 : 1;
      gain.connect(dest);
      if (mix) gain.connect(mix.input);
      inputs.set(speaker, gain);
      for (const t of dest.stream.getAudioTracks()) pc1.addTrack(t, dest.stream);
    }
    const offer = await pc1.createOffer();
    await pc1.setLocalDescription(offer);
    await pc2.setRemoteDescription(mix
      ? { type: 'offer', sdp: offer.sdp.split(mix.stream.id).join('mainAudio-sandbox') }
      : offer);
    const answer = await pc2.createAnswer();
    await pc2.setLocalDescription(answer);
    await pc1.setRemoteDescription(answer);
    // The page left the call while this was starting.
    if (media !== state) throw new Error('the call is over');
    if (ctx.state !== 'running') ctx.resume().catch(() => {});

    // Walks the timeline in order, ten seconds ahead of now. Utterances
    // already over are skipped; one under way starts part-way through.
    const speech = script.speech;
    const repeat = script.repeat_ms || 0;
    let k = 0;
    let i = 0;
    const schedule = () => {
      if (ctx.state !== 'running' || !speech.length) return;
      const now = callNow();
      for (;;) {
        if (i >= speech.length) {
          if (!repeat) return;
          i = 0;
          k++;
        }
        const u = speech[i];
        const { start, end } = occurrence(u, k);
        if (start > now + 10000) return;
        i++;
        if (end <= now) continue;
        const src = ctx.createBufferSource();
        src.buffer = buffers.get(u.clip);
        src.connect(inputs.get(u.speaker));
        if (start >= now) src.start(ctx.currentTime + (start - now) / 1000);
        else src.start(ctx.currentTime, (now - start) / 1000);
      }
    };
    schedule();
    state.timer = setInterval(schedule, 1000);
    return state;
  }

  // `speakers=remote`: the voices come from the sandbox server, one
  // receive-only transceiver per speaker in the order they first speak, as
  // a platform's media server sends them; the page only decodes.
  async function startRemoteMedia(speakers) {
    const pc = new RTCPeerConnection();
    const state = { pcs: [pc], stop: () => pc.close() };
    media = state;
    pc.ontrack = (e) => {
      const a = document.createElement('audio');
      a.srcObject = e.streams[0] || new MediaStream([e.track]);
      a.autoplay = true;
      document.body.appendChild(a);
    };
    for (let i = 0; i < speakers.length; i++) pc.addTransceiver('audio', { direction: 'recvonly' });
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const r = await api('/speakers', { ...seat, offer: { type: 'offer', sdp: offer.sdp } });
    if (!r.ok) throw new Error(`speakers: ${r.status} ${await r.text()}`);
    await pc.setRemoteDescription(await r.json());
    if (media !== state) throw new Error('the call is over');
    return state;
  }

  // Once the page is out of the call, or its audio failed: never restarted.
  function stopMedia() {
    const m = media;
    media = 'stopped';
    if (m && m.stop) m.stop();
  }

  // Hands the bot's audio capture junk frames, as a broken page might.
  function sendCorruptFrames(n) {
    if (typeof window.__attacheAudio !== 'function') return;
    const junk = ['not-base64!!', 'AAAA', 'AAE=', '%%%'];
    for (let i = 0; i < n; i++) window.__attacheAudio(junk[i % junk.length]);
  }

  // A cookie banner over the whole lobby until it is answered, then a
  // notice lying exactly over the join button.
  function showOverlays() {
    const cookies = $('[data-overlay="cookies"]');
    const notice = $('[data-overlay="notice"]');
    if (!cookies) return;
    cookies.hidden = false;
    for (const b of cookies.querySelectorAll('button')) {
      b.addEventListener('click', () => {
        cookies.hidden = true;
        if (!notice) return;
        const r = role('join').getBoundingClientRect();
        Object.assign(notice.style, {
          left: `${r.left - 4}px`, top: `${r.top - 4}px`,
          width: `${r.width + 8}px`, height: `${r.height + 8}px`,
        });
        notice.hidden = false;
      });
    }
  }

  // In-call notices (a note taker, a recording) wait to be acknowledged.
  function showNotices() {
    for (const n of $$('[data-overlay="in-call"]')) {
      for (const b of n.querySelectorAll('button')) b.addEventListener('click', () => { n.hidden = true; });
      setTimeout(() => { n.hidden = false; }, 1000);
    }
  }

  fetch(`/api/meetings/${encodeURIComponent(id)}`).then((r) => (r.ok ? r.json() : null)).then(async (m) => {
    if (!m || m.missing) return finish('not_found');
    if (m.ended) return finish('ended');
    if (m.wall === 'sign_in') return finish('sign_in');
    if (m.wall === 'bots') return finish('bots');
    if (m.passcode_required && !pwd) return finish('passcode_missing');
    meeting = m;
    const title = $('[data-role="title"]');
    if (title) title.textContent = m.title;
    // The lobby is ready once the devices are.
    await devicesReady;
    SKIN.devices(devices);
    const toggles = role('devices');
    if (toggles) toggles.hidden = !m.device_toggles;
    role('join-controls').hidden = false;
    if (m.overlays) showOverlays();
  });

  for (const join of $$('[data-role="join"]')) {
    join.addEventListener('click', async () => {
      const name = role('name') ? role('name').value : '';
      const r = await api('/knock', { name, passcode: pwd, uplink: uplink() });
      const body = await r.json();
      if (!r.ok) {
        if (r.status === 404) return finish('not_found');
        if (body.code === 'wrong_passcode') return finish('passcode_wrong');
        role('lobby-error').textContent = body.error;
        return;
      }
      seat = { participant_id: body.participant_id, secret: body.secret };
      // The answer carries the first view: an open meeting shows the call
      // at once, as the platforms do, with no waiting screen between.
      if (settle(body.view)) setTimeout(poll, 250);
    });
  }

  for (const button of $$('[data-confirm]')) {
    button.addEventListener('click', () => { $(button.dataset.confirm).hidden = false; });
  }
  for (const button of $$('[data-role="leave"]')) {
    button.addEventListener('click', async () => {
      if (seat) await api('/leave', seat);
      seat = null;
      finish('left');
    });
  }

  function renderPeople(everyone) {
    const box = role('people');
    const count = role('people-count');
    if (count) SKIN.count(count, everyone.length);
    // A large meeting's grid: the page's own tile first, then as many as fit.
    const mine = (p) => !!seat && p.id === seat.participant_id;
    const list = meeting && meeting.tiles
      ? everyone.filter(mine).concat(everyone.filter((p) => !mine(p))).slice(0, meeting.tiles)
      : everyone;
    const seen = new Set(list.map((p) => p.id));
    for (const [pid, el] of entries) {
      if (seen.has(pid)) continue;
      el.remove();
      entries.delete(pid);
      speakingNow.delete(pid);
    }
    for (const p of list) {
      if (entries.has(p.id)) continue;
      const el = SKIN.entry(p, mine(p));
      entries.set(p.id, el);
      box.appendChild(el);
    }
    castIds.clear();
    for (const p of everyone) if (p.host) castIds.set(p.name, p.id);
    renderSpeaking();
  }

  const chatIds = [];
  const chatSeen = new Set();
  function renderChat(list) {
    const box = role('chat');
    for (const m of list) {
      if (chatSeen.has(m.id)) continue;
      chatSeen.add(m.id);
      chatIds.push(m.id);
      box.appendChild(SKIN.message(m));
      box.scrollTop = box.scrollHeight;
    }
    // The oldest go first; the server only ever returns the latest ones, so
    // a message dropped here never comes back.
    while (chatIds.length > MAX_MESSAGES) {
      chatSeen.delete(chatIds.shift());
      box.firstElementChild.remove();
    }
  }

  function inCall(view) {
    if (callStart === null) callStart = performance.now() - (view.elapsed_ms || 0);
    meterDevices();
    renderPeople(view.participants);
    renderChat(view.chat || []);
    if (!meeting) return;
    if (!corruptSent) {
      corruptSent = true;
      if (meeting.overlays) showNotices();
      if (meeting.corrupt_frames > 0) sendCorruptFrames(meeting.corrupt_frames);
      // A hung renderer: nothing on the page runs until it is over.
      if (meeting.hang_ms > 0) {
        setTimeout(() => {
          const until = performance.now() + meeting.hang_ms;
          while (performance.now() < until) { /* hung */ }
        }, meeting.hang_after_ms);
      }
    }
    if (meeting.script && meeting.script.speech.length && !media && !audioGated()) {
      media = 'starting';
      startMedia().catch((e) => {
        console.warn('sandbox audio:', e);
        if (media && media.stop) media.stop();
        media = 'stopped';
      });
    }
  }

  async function poll() {
    if (!seat) return;
    let view;
    try {
      const r = await api('/poll', { ...seat, uplink: uplink() });
      if (r.status === 404) return finish('not_found');
      view = await r.json();
    } catch (e) {
      return setTimeout(poll, 500);
    }
    if (settle(view)) setTimeout(poll, 250);
  }

  // Shows what a view says; false once the page is done with the meeting.
  function settle(view) {
    if (view.ended) { finish('ended'); return false; }
    switch (view.state) {
      case 'lobby': show('waiting'); break;
      case 'admitted':
        show('call');
        inCall(view);
        break;
      case 'denied': finish('denied'); return false;
      case 'removed': finish('removed'); return false;
      case 'left': finish('left'); return false;
    }
    return true;
  }

  show(launcher ? 'launcher' : 'lobby');
})();
