// HLS playback for the demo page: the room's Low-Latency HLS
// (/hls/{room}/index.m3u8), played with hls.js when the page has it
// (window.Hls: add <script src="hls.min.js"> to index.html, or load it
// before watching), else natively where the browser can (Safari, iOS).

// hlsUrl is the room's multivariant playlist, with the token for servers
// that want one (players cannot set headers, so it goes in the query).
export function hlsUrl(roomId, token) {
  const u = new URL(`/hls/${encodeURIComponent(roomId)}/index.m3u8`, location.href);
  if (token) u.searchParams.set('token', token);
  return u.href;
}

// HlsPlayer plays a room's HLS in a video element. Events: 'failed'
// (detail: what the user reads).
export class HlsPlayer extends EventTarget {
  constructor(video, url) {
    super();
    this.video = video;
    this.url = url;
    this.hls = null;
  }

  // canPlay says whether this browser can play HLS at all.
  static canPlay(video) {
    return !!video.canPlayType('application/vnd.apple.mpegurl') || !!(window.Hls && window.Hls.isSupported());
  }

  // start checks that the room is served over HLS (a VP8 room is not, and
  // the server says why), then attaches the stream to the video element.
  async start() {
    const resp = await fetch(this.url, { method: 'GET' });
    if (!resp.ok) {
      const why = (await resp.text()).trim();
      throw new Error(why || `HLS: ${resp.status}`);
    }
    // hls.js first where the page has it: it follows the low-latency
    // playlist (Chromium's own HLS player, which says "maybe", does not).
    if (!(window.Hls && window.Hls.isSupported())) {
      this.video.src = this.url;
      return;
    }
    const hls = new window.Hls({ lowLatencyMode: true });
    this.hls = hls;
    hls.on(window.Hls.Events.ERROR, (_e, data) => {
      if (data.fatal) this.dispatchEvent(new CustomEvent('failed', { detail: `HLS: ${data.details}` }));
    });
    hls.loadSource(this.url);
    hls.attachMedia(this.video);
  }

  close() {
    if (this.hls) this.hls.destroy();
    this.hls = null;
    this.video.removeAttribute('src');
    this.video.load();
  }
}
