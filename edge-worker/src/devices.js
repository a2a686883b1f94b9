// Injected into every frame before any page script: the bot's devices as
// the meeting sees them. It has one microphone, which is silent, and no
// camera, so nothing it could send (a test tone, a test pattern, the
// machine's own devices) ever reaches a meeting. The microphone's track is
// a live track that carries no samples: it costs nothing, and a platform
// that mutes or unmutes it only changes what is sent of silence.
(() => {
  const md = navigator.mediaDevices;
  if (!md || md.__attacheDevices) return;
  const MIC = { deviceId: 'attache-silent', kind: 'audioinput', label: 'Silent microphone', groupId: 'attache' };
  const SPEAKER = { deviceId: 'default', kind: 'audiooutput', label: 'Default', groupId: 'attache' };
  const info = (d) => Object.freeze({ ...d, toJSON() { return { ...d }; } });
  const notFound = () => new DOMException('Requested device not found', 'NotFoundError');

  function silentTrack() {
    if (typeof window.MediaStreamTrackGenerator === 'function') {
      return new window.MediaStreamTrackGenerator({ kind: 'audio' });
    }
    // Without track generators: a stopped audio graph, which renders nothing.
    const ctx = new AudioContext();
    const track = ctx.createMediaStreamDestination().stream.getAudioTracks()[0];
    ctx.suspend().catch(() => {});
    return track;
  }

  // The standard's rules for a machine with a microphone and no camera: a
  // request that needs a camera fails as a whole.
  async function getUserMedia(constraints) {
    const c = constraints || {};
    if (!c.audio && !c.video) throw new TypeError("Failed to execute 'getUserMedia': At least one of audio and video must be requested");
    if (c.video) throw notFound();
    return new MediaStream([silentTrack()]);
  }
  Object.defineProperty(md, 'getUserMedia', { value: getUserMedia, configurable: true });
  Object.defineProperty(md, 'enumerateDevices', {
    value: async () => [info(MIC), info(SPEAKER)],
    configurable: true,
  });
  // Screens are never shared.
  if (md.getDisplayMedia) {
    Object.defineProperty(md, 'getDisplayMedia', {
      value: async () => { throw new DOMException('Permission denied', 'NotAllowedError'); },
      configurable: true,
    });
  }
  // The callback forms older clients still call.
  for (const name of ['getUserMedia', 'webkitGetUserMedia']) {
    if (typeof navigator[name] === 'function') {
      Object.defineProperty(navigator, name, {
        value: (c, ok, fail) => { getUserMedia(c).then(ok, fail); },
        configurable: true,
      });
    }
  }
  Object.defineProperty(md, '__attacheDevices', { value: true });
})();
