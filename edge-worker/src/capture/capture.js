// Injected before any page script: every remote audio track any
// RTCPeerConnection receives is mixed into one AudioWorklet, which hands
// 100 ms of 48 kHz mono PCM at a time to the worker through the
// `__attacheAudio` binding: base64 of the capture time of its first
// sample (f64, Unix milliseconds, from the audio clock) followed by 4800
// little-endian 16-bit samples, converted on the audio thread: ten calls a
// second rather than one per 20 ms frame.
(() => {
  if (window.__attacheCapture) return;
  // One capture per page, or frames would interleave their audio: the
  // first frame to receive audio claims it on the top window (the Zoom web
  // client runs in a same-origin iframe). A frame of another origin than
  // the top's is never the meeting's client, and captures nothing.
  let top;
  try {
    top = window.top;
    void top.__attacheCaptureOwner;
  } catch (e) {
    return;
  }
  const send = window.__attacheAudio;
  if (typeof send !== 'function') return;
  const claim = () => {
    if (!top.__attacheCaptureOwner) top.__attacheCaptureOwner = window;
    return top.__attacheCaptureOwner === window;
  };
  const BATCH = 4800;
  const WORKLET = `
    const BATCH = ${BATCH};
    class AttacheCapture extends AudioWorkletProcessor {
      constructor() { super(); this.buf = new Int16Array(BATCH); this.n = 0; this.first = 0; }
      process(inputs) {
        const ch = inputs[0] && inputs[0][0];
        // No input (every source paused) still advances time: silence keeps
        // the recording's timeline continuous.
        const len = ch ? ch.length : 128;
        for (let i = 0; i < len; i++) {
          // The batch's first sample, on the context's clock.
          if (this.n === 0) this.first = currentFrame + i;
          const v = ch ? ch[i] * 32768 : 0;
          this.buf[this.n++] = v >= 32767 ? 32767 : v <= -32768 ? -32768 : v;
          if (this.n === BATCH) {
            this.port.postMessage({ frame: this.first, pcm: this.buf }, [this.buf.buffer]);
            this.buf = new Int16Array(BATCH);
            this.n = 0;
          }
        }
        return true;
      }
    }
    registerProcessor('attache-capture', AttacheCapture);`;
  // One string a batch where the engine can (Uint8Array.toBase64): the
  // binary string and its chunks that btoa needs were garbage the page's
  // collector left for minutes, tens of MiB a bot.
  const base64 = typeof Uint8Array.prototype.toBase64 === 'function'
    ? (bytes) => bytes.toBase64()
    : (bytes) => {
        let s = '';
        for (let i = 0; i < bytes.length; i += 0x2000) {
          s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x2000));
        }
        return btoa(s);
      };
  let ready = null;
  const seen = new Set();
  function sink() {
    if (!ready) {
      ready = (async () => {
        // Larger render buffers ('playback'), so the audio threads wake
        // less often: about 10 millicores a bot less than 'interactive'.
        // Nothing is played, and a batch's time comes from its sample
        // count, not from when it arrives. A silent sink (sinkId 'none')
        // costs more: its clock runs on the renderer's thread pool.
        const ctx = new AudioContext({ sampleRate: 48000, latencyHint: 'playback' });
        const url = URL.createObjectURL(new Blob([WORKLET], { type: 'application/javascript' }));
        await ctx.audioWorklet.addModule(url);
        const node = new AudioWorkletNode(ctx, 'attache-capture', {
          numberOfInputs: 1, numberOfOutputs: 0, channelCount: 1, channelCountMode: 'explicit',
        });
        // Wall-clock time of the context's sample 0. A batch reaches us
        // after it ends, never before, so the earliest estimate is the best;
        // it may creep later by 1 ms a second, for clock drift.
        let origin = Infinity;
        const out = new Uint8Array(8 + BATCH * 2);
        const view = new DataView(out.buffer);
        node.port.onmessage = (e) => {
          origin = Math.min(Date.now() - (e.data.frame + BATCH) / 48, origin + BATCH / 48000);
          view.setFloat64(0, origin + e.data.frame / 48, true);
          out.set(new Uint8Array(e.data.pcm.buffer), 8);
          send(base64(out));
        };
        return { ctx, node };
      })();
    }
    return ready;
  }

  // Teams sends one server-mixed track ("mainAudio" in its id or its
  // stream's) and other tracks that repeat voices already in the mix: once
  // a mixed track is there, only mixed tracks are heard, or words would be
  // doubled. Until one comes, every track is heard. If the mix then stays
  // silent for 20 s while the other tracks carry sound, the mix has failed:
  // the other tracks are heard instead, for good.
  const MIXED = /mainAudio/i;
  const MIX_SILENT_MS = 20000;
  const LEVEL_FLOOR = 0.003;
  let mode = 'all'; // 'all' | 'mixed' | 'separate'
  const sources = [];
  const heard = (s) => (mode === 'all' ? true : mode === 'mixed' ? s.mixed : !s.mixed);
  const levelBuf = new Float32Array(1024);
  const loud = (s) => {
    s.analyser.getFloatTimeDomainData(levelBuf);
    let sum = 0;
    for (const v of levelBuf) sum += v * v;
    return Math.sqrt(sum / levelBuf.length) > LEVEL_FLOOR;
  };
  function analyse(ctx, s) {
    if (s.analyser) return;
    s.analyser = ctx.createAnalyser();
    s.analyser.fftSize = levelBuf.length;
    s.source.connect(s.analyser);
  }
  function watchMix(node) {
    let mixHeardAt = Date.now();
    let othersHeard = false;
    const timer = setInterval(() => {
      if (sources.some((s) => s.mixed && loud(s))) {
        mixHeardAt = Date.now();
        othersHeard = false;
        return;
      }
      othersHeard = othersHeard || sources.some((s) => !s.mixed && loud(s));
      if (!othersHeard || Date.now() - mixHeardAt < MIX_SILENT_MS) return;
      clearInterval(timer);
      mode = 'separate';
      for (const s of sources) {
        if (s.mixed) s.source.disconnect(node);
        else s.source.connect(node);
        if (s.analyser) s.source.disconnect(s.analyser);
      }
    }, 500);
  }
  async function capture(track, streams) {
    if (track.kind !== 'audio' || seen.has(track.id) || !claim()) return;
    // The mix is named in the track's id or in its stream's.
    const mixed = MIXED.test(track.id) || (streams || []).some((s) => MIXED.test(s.id));
    seen.add(track.id);
    try {
      const { ctx, node } = await sink();
      if (ctx.state !== 'running') await ctx.resume();
      const s = { source: ctx.createMediaStreamSource(new MediaStream([track])), mixed, analyser: null };
      sources.push(s);
      if (mixed && mode === 'all') {
        mode = 'mixed';
        for (const o of sources) if (!o.mixed && o !== s) o.source.disconnect(node);
        watchMix(node);
      }
      if (heard(s)) s.source.connect(node);
      // While the mix is on trial, every track's level is watched.
      if (mode === 'mixed') for (const o of sources) analyse(ctx, o);
    } catch (e) {
      // Try again with the next track, and tell the worker why.
      ready = null;
      seen.delete(track.id);
      send('!' + String((e && e.message) || e));
    }
  }
  const Native = window.RTCPeerConnection;
  if (!Native) return;
  function Wrapped(...args) {
    if (!new.target) {
      throw new TypeError("Failed to construct 'RTCPeerConnection': Please use the 'new' operator");
    }
    // Reflect.construct keeps subclasses (class X extends RTCPeerConnection) intact.
    const pc = Reflect.construct(Native, args, new.target);
    pc.addEventListener('track', (e) => { capture(e.track, e.streams); });
    return pc;
  }
  Wrapped.prototype = Native.prototype;
  Object.setPrototypeOf(Wrapped, Native);
  window.RTCPeerConnection = Wrapped;
  window.__attacheCapture = true;
})();
