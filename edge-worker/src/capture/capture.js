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
  let ready = null;
  const seen = new Set();
  function sink() {
    if (!ready) {
      ready = (async () => {
        const ctx = new AudioContext({ sampleRate: 48000 });
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
          let s = '';
          for (let i = 0; i < out.length; i += 0x2000) {
            s += String.fromCharCode.apply(null, out.subarray(i, i + 0x2000));
          }
          send(btoa(s));
        };
        return { ctx, node };
      })();
    }
    return ready;
  }

  // Teams sends one server-mixed track ("mainAudio" in its id or its
  // stream's) and other tracks that repeat voices already in the mix: once
  // a mixed track is there, only mixed tracks are heard, or words would be
  // doubled.
  const MIXED = /mainAudio/i;
  let mixedOnly = false;
  const sources = [];
  async function capture(track, streams) {
    if (track.kind !== 'audio' || seen.has(track.id) || !claim()) return;
    // The mix is named in the track's id or in its stream's.
    const mixed = MIXED.test(track.id) || (streams || []).some((s) => MIXED.test(s.id));
    if (mixedOnly && !mixed) return;
    seen.add(track.id);
    try {
      const { ctx, node } = await sink();
      if (ctx.state !== 'running') await ctx.resume();
      const source = ctx.createMediaStreamSource(new MediaStream([track]));
      source.connect(node);
      sources.push({ source, mixed });
      if (mixed && !mixedOnly) {
        mixedOnly = true;
        for (const s of sources) if (!s.mixed) s.source.disconnect();
      }
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
