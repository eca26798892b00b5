// onair.js: a browser client of the onair signal server, speaking the
// protocol of docs/protocol.md exactly: REST under the base path with the `email`
// header, and one WebSocket (`{base}/ws`) per WebRTC session carrying the SDP
// offer/answer and trickled ICE candidates both ways. It owns no page state;
// app.js drives it.

// ApiError is a failed REST call, with the protocol's error body if any.
export class ApiError extends Error {
  constructor(status, body, text) {
    const name = body && body.name;
    super((body && body.message) || text || `HTTP ${status}`);
    this.status = status;
    this.code = name || `HTTP_${status}`;
  }
}

// Api calls the REST routes of one server. With a token (servers started
// with -auth-secret want one), every call carries it: REST and WHIP/WHEP as
// Authorization: Bearer, the WebSocket in its URL (browsers cannot set
// headers on it). The server then takes the identity from the token.
export class Api {
  constructor(base, iceServers, token) {
    this.base = base;
    this.iceServers = iceServers || [];
    this.token = token || '';
  }

  // discover finds the API: the base path given (e.g. ?base=/x), else the
  // default /signal, else the root; it reads the ICE servers from {base}/config.
  static async discover(wanted, token) {
    const candidates = wanted != null ? [wanted] : ['/signal', ''];
    let lastError;
    for (const base of candidates) {
      try {
        const headers = token ? { Authorization: `Bearer ${token}` } : {};
        const res = await fetch(`${base}/config`, { headers, cache: 'no-store' });
        if (res.status === 401) throw new Error('this server wants a token: paste one in the Token field, or open the page with ?token=…');
        if (!res.ok) throw new Error(`${base}/config answered ${res.status}`);
        const cfg = await res.json();
        const real = typeof cfg.basePath === 'string' ? cfg.basePath : base;
        return new Api(real, Array.isArray(cfg.iceServers) ? cfg.iceServers : [], token);
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError;
  }

  async request(method, path, { email, body } = {}) {
    const headers = {};
    if (email != null) headers.email = email;
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(this.base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
    const text = res.status === 204 ? '' : await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (!res.ok) throw new ApiError(res.status, data, text);
    return data;
  }

  rooms() { return this.request('GET', '/room/list'); }
  goLive(email, room) { return this.request('POST', '/room/live', { email, body: room }); }
  endLive(email) { return this.request('DELETE', '/room/live', { email }); }
  view(email, roomId) { return this.request('POST', '/room/view', { email, body: { roomId } }); }
  leave(email) { return this.request('DELETE', '/room/view', { email }); }

  socketURL() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const query = this.token ? `?token=${encodeURIComponent(this.token)}` : '';
    return `${scheme}//${location.host}${this.base}/ws${query}`;
  }
}

// MediaSession is one WebRTC session with the server's media engine: a
// presenter's peer connection (sendonly, from a local stream) or a viewer's
// (recvonly). How its offer and answer travel is its transport's business,
// and so is what a lost connection means: Session (the WebSocket protocol)
// and WhipSession (WHIP and WHEP) are its two transports. Both dispatch:
//   'track'     detail: MediaStream   remote media arrived (viewer)
//   'connected'                       the media connection is up
//   'notice'    detail: string        something worth showing, not fatal
class MediaSession extends EventTarget {
  constructor({ api, role, roomId, stream }) {
    super();
    this.api = api;
    this.role = role; // 'presenter' or 'viewer'
    this.roomId = roomId;
    this.stream = stream || null;
    this.pc = null;
    this.closed = false;
    this.answered = false;
  }

  // newPeer makes the peer connection: the presenter's stream goes out
  // (addSendTracks), a viewer takes audio and video.
  newPeer() {
    const pc = new RTCPeerConnection({ iceServers: this.api.iceServers });
    this.pc = pc;
    pc.addEventListener('connectionstatechange', () => this.onConnectionState());
    pc.addEventListener('track', (e) => {
      const stream = e.streams[0] || new MediaStream([e.track]);
      this.dispatchEvent(new CustomEvent('track', { detail: stream }));
    });
    if (this.role === 'presenter') {
      addSendTracks(pc, this.stream);
    } else {
      pc.addTransceiver('audio', { direction: 'recvonly' });
      pc.addTransceiver('video', { direction: 'recvonly' });
    }
    return pc;
  }

  // onConnectionState tells the page when the media is up or interrupted,
  // and hands a lost connection to the transport (onLost).
  onConnectionState() {
    if (this.closed) return;
    this.onState(this.pc.connectionState);
    switch (this.pc.connectionState) {
      case 'connected':
        this.dispatchEvent(new Event('connected'));
        break;
      case 'disconnected':
        this.dispatchEvent(new CustomEvent('notice', { detail: 'Connection interrupted, trying to recover…' }));
        this.onInterrupted();
        break;
      case 'failed':
      case 'closed':
        this.onLost();
        break;
      default:
    }
  }

  // The transport's hooks: every state change, an interruption, a loss.
  onState() {}
  onInterrupted() {}
  onLost() {}
}

// Session is a MediaSession signalled over a WebSocket of its own, which
// carries the offer and answer, and candidates both ways. Besides MediaSession's
// events it dispatches:
//   'ended'     detail: string        the server ended it (stopCommunication)
//   'failed'    detail: string        it cannot go on
// After 'ended' or 'failed' it has closed itself.
export class Session extends MediaSession {
  constructor({ api, role, email, roomId, stream }) {
    super({ api, role, roomId, stream });
    this.email = email;
    this.ws = null;
    this.sessionId = null;
    this.offerSent = false;
    this.localQueue = []; // our candidates, until the offer is sent
    this.remoteQueue = []; // the server's, until its answer is set
  }

  // start opens the socket, makes the offer and sends it. It resolves once
  // the offer is sent; the answer and the rest arrive as events.
  async start() {
    await this.openSocket();
    if (this.closed) return;
    const pc = this.newPeer();
    pc.addEventListener('icecandidate', (e) => {
      if (!e.candidate || !e.candidate.candidate) return; // end of candidates
      const c = { candidate: e.candidate.candidate, sdpMid: e.candidate.sdpMid, sdpMLineIndex: e.candidate.sdpMLineIndex };
      if (this.offerSent) this.sendCandidate(c);
      else this.localQueue.push(c);
    });
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    if (this.closed) return;
    this.send({ id: this.role, roomId: this.roomId, email: this.email, sdpOffer: pc.localDescription.sdp });
    this.offerSent = true;
    for (const c of this.localQueue.splice(0)) this.sendCandidate(c);
  }

  openSocket() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.api.socketURL());
      this.ws = ws;
      let opened = false;
      const timer = setTimeout(() => {
        if (!opened) {
          reject(new Error('The server did not open the signalling connection in time.'));
          ws.close();
        }
      }, 10000);
      ws.addEventListener('message', (e) => {
        let msg;
        try { msg = JSON.parse(e.data); } catch { return; }
        if (msg.id === 'open' && !opened) {
          opened = true;
          clearTimeout(timer);
          this.sessionId = msg['session-id'];
          resolve();
          return;
        }
        this.onMessage(msg).catch((err) => this.fail(`Signalling error: ${err.message || err}`));
      });
      ws.addEventListener('close', (e) => {
        clearTimeout(timer);
        if (!opened) {
          reject(new Error(`Cannot open the signalling connection (WebSocket closed, code ${e.code}).`));
          return;
        }
        if (!this.closed) this.fail('Lost the connection to the server.');
      });
    });
  }

  async onMessage(msg) {
    if (this.closed) return;
    switch (msg.id) {
      case 'presenterResponse':
      case 'viewerResponse':
        if (msg.response !== 'accepted') {
          this.fail(msg.message || 'The server rejected the offer.');
          return;
        }
        await this.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdpAnswer });
        this.answered = true;
        for (const c of this.remoteQueue.splice(0)) await this.addRemoteCandidate(c);
        return;
      case 'iceCandidate':
        if (!msg.candidate) return;
        if (this.answered) await this.addRemoteCandidate(msg.candidate);
        else this.remoteQueue.push(msg.candidate);
        return;
      case 'stopCommunication':
        this.finish('ended', msg.message || 'The broadcast has ended.');
        return;
      case 'error':
        // Before the answer an error means the offer went nowhere.
        if (!this.answered) this.fail(msg.message || 'The server could not handle the request.');
        else this.dispatchEvent(new CustomEvent('notice', { detail: msg.message || 'Server error.' }));
        return;
      default:
        // Unknown ids are ignored, as kurento-utils clients do.
    }
  }

  async addRemoteCandidate(c) {
    try {
      await this.pc.addIceCandidate(c);
    } catch (err) {
      this.dispatchEvent(new CustomEvent('notice', { detail: `Ignored a bad ICE candidate: ${err.message}` }));
    }
  }

  // onLost fails the session, a moment later: the server closes the media
  // of an ended broadcast right after it sends stopCommunication, and that
  // message should win.
  onLost() {
    setTimeout(() => this.fail('The media connection failed (ICE or DTLS).'), 1000);
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  sendCandidate(candidate) {
    this.send({ id: 'onIceCandidate', roomId: this.roomId, candidate });
  }

  fail(reason) { this.finish('failed', reason); }

  finish(kind, reason) {
    if (this.closed) return;
    this.close();
    this.dispatchEvent(new CustomEvent(kind, { detail: reason }));
  }

  // close stops the session on this side: the peer connection and the
  // socket. It does not stop the local stream (its owner does) and calls
  // no REST route. Idempotent.
  close() {
    if (this.closed) return;
    this.closed = true;
    if (this.pc) this.pc.close();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, 'bye');
  }
}

// WhipError is a WHIP or WHEP request the server refused: its status, the
// server's reason (plain text) and, for a broadcast not live yet, how many
// seconds to wait before trying again.
export class WhipError extends Error {
  constructor(status, text, retryAfter) {
    const reason = (text || '').trim() || `HTTP ${status}`;
    super(status === 409 && retryAfter
      ? `The broadcast is not live yet: try again in ${retryAfter} s. (${reason})`
      : `${reason} (HTTP ${status})`);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

// WhipSession is a WHIP session (publish a local stream) or a WHEP session
// (watch a room): the SDP offer, with every ICE candidate in it, goes in one
// POST to /whip/{room} or /whep/{room}, and the answer comes back in the
// response, with the session's URL (Location), which takes DELETE when the
// session ends. No WebSocket: nothing tells a WHEP player that the broadcast
// ended, so it sees the media connection drop, and app.js decides from the
// room list whether that was the end. Besides MediaSession's events it
// dispatches:
//   'dropped'   detail: string        the media connection is gone or stuck
// It never dispatches 'ended' or 'failed' itself.
export class WhipSession extends MediaSession {
  constructor({ api, kind, roomId, stream, token, query }) {
    super({ api, role: kind === 'whip' ? 'presenter' : 'viewer', roomId, stream });
    this.kind = kind; // 'whip' or 'whep'
    this.token = token || (api && api.token) || ''; // a stream key, else the page's token
    this.query = query || null;
    this.resource = null; // the session URL, once created
    this.etag = null;
    this.deleted = null; // the DELETE's promise, once sent
    this.stuck = null; // timer while disconnected
  }

  headers(extra) {
    const h = { ...extra };
    if (this.token) h.Authorization = `Bearer ${this.token}`;
    return h;
  }

  // start makes the offer, waits for its candidates (3 s at most, then
  // sends what it has), POSTs it and applies the answer. It throws a
  // WhipError if the server refuses.
  async start() {
    const pc = this.newPeer();
    await pc.setLocalDescription(await pc.createOffer());
    await this.gathered(3000);
    if (this.closed) return;
    let url = `/${this.kind}/${encodeURIComponent(this.roomId)}`;
    if (this.query) url += `?${new URLSearchParams(this.query)}`;
    const res = await fetch(url, {
      method: 'POST',
      headers: this.headers({ 'Content-Type': 'application/sdp' }),
      body: pc.localDescription.sdp,
      cache: 'no-store',
    });
    const text = await res.text();
    if (res.status !== 201) throw new WhipError(res.status, text, res.headers.get('Retry-After'));
    this.resource = new URL(res.headers.get('Location'), new URL(url, location.href)).href;
    this.etag = res.headers.get('ETag');
    if (this.closed) {
      this.deleteResource();
      return;
    }
    await pc.setRemoteDescription({ type: 'answer', sdp: text });
    this.answered = true;
  }

  // gathered resolves when ICE gathering is complete or after ms.
  gathered(ms) {
    const pc = this.pc;
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        if (pc.iceGatheringState !== 'complete') return;
        pc.removeEventListener('icegatheringstatechange', done);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        pc.removeEventListener('icegatheringstatechange', done);
        resolve();
      }, ms);
      pc.addEventListener('icegatheringstatechange', done);
    });
  }

  onState() { clearTimeout(this.stuck); }

  // onInterrupted gives a disconnected connection 3 s: the server closes the
  // media of a room that ended, and one that stays disconnected is as good
  // as gone.
  onInterrupted() {
    this.stuck = setTimeout(() => this.drop('The media connection was lost.'), 3000);
  }

  onLost() { this.drop('The media connection failed or was closed.'); }

  drop(reason) {
    if (!this.closed) this.dispatchEvent(new CustomEvent('dropped', { detail: reason }));
  }

  // deleteResource ends the session on the server, once. keepalive lets it
  // go out while the page unloads.
  deleteResource() {
    if (!this.resource) return Promise.resolve();
    if (!this.deleted) {
      this.deleted = fetch(this.resource, { method: 'DELETE', headers: this.headers(), keepalive: true, cache: 'no-store' })
        .then((res) => res.status)
        .catch(() => 0);
    }
    return this.deleted;
  }

  // close ends the session on the server (DELETE; for WHIP that ends the
  // broadcast, and its viewers are told), then on this side. The DELETE
  // goes first: a media connection closed first would end the session on
  // the server as a lost one, and the DELETE would find nothing (404). It
  // resolves with the DELETE's status (0 if none could be sent). With
  // { remote: false } it sends no DELETE: for a session the server has
  // already ended. Idempotent.
  async close({ remote = true } = {}) {
    const first = !this.closed;
    this.closed = true;
    clearTimeout(this.stuck);
    const status = remote ? await this.deleteResource() : 0;
    if (first && this.pc) this.pc.close();
    return status;
  }
}

// tokenSubject is the subject (the protocol's email) a token names, read
// without checking its signature (the server does that), or '' if it is
// not a token.
// preferH264 puts H.264 first among a video sender's codecs, when the
// browser offers it: an H.264 broadcast also reaches the HLS tier and is
// recorded to MP4. Other codecs stay as fallbacks.
export function preferH264(transceiver) {
  const caps = window.RTCRtpSender && RTCRtpSender.getCapabilities && RTCRtpSender.getCapabilities('video');
  if (!caps || transceiver.sender.track?.kind !== 'video' || !transceiver.setCodecPreferences) return;
  const isH264 = (c) => c.mimeType.toLowerCase() === 'video/h264';
  const h264 = caps.codecs.filter(isH264);
  if (h264.length === 0) return;
  // Constrained Baseline with packetization-mode 1 first: what every
  // player (and iOS) decodes.
  const rank = (c) => (/profile-level-id=42e0/.test(c.sdpFmtpLine || '') ? 0 : 1) + (/packetization-mode=1/.test(c.sdpFmtpLine || '') ? 0 : 2);
  h264.sort((a, b) => rank(a) - rank(b));
  transceiver.setCodecPreferences([...h264, ...caps.codecs.filter((c) => !isH264(c))]);
}

export function tokenSubject(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4)));
    return typeof claims.sub === 'string' ? claims.sub : '';
  } catch {
    return '';
  }
}

// simulcastLayers are the video layers a presenter sends when the browser
// can: a quarter, half and full resolution (docs/simulcast.md). Each viewer
// is then sent the one its network carries.
const simulcastLayers = [
  { rid: 'l', scaleResolutionDownBy: 4 },
  { rid: 'm', scaleResolutionDownBy: 2 },
  { rid: 'h', scaleResolutionDownBy: 1 },
];

// addSendTracks adds a presenter's tracks: its video as three simulcast
// layers where the browser takes sendEncodings, as one stream otherwise.
function addSendTracks(pc, stream) {
  for (const track of stream.getAudioTracks()) preferH264(pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] }));
  for (const track of stream.getVideoTracks()) {
    let tr;
    try {
      tr = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream], sendEncodings: simulcastLayers });
    } catch (e) {
      tr = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    }
    preferH264(tr);
  }
}
