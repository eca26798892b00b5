// app.js: the demo page. It shows the live rooms (polled every 2 s), lets
// the user go live with a camera and microphone, and watch a room. All talk
// with the server goes through onair.js. One person at a time is either
// presenting or watching, as the server allows.
//
// Besides the signal protocol (REST + WebSocket), it speaks WHIP and WHEP:
// "Publish with WHIP" goes live as an encoder does, and the WHEP button of a
// room (or /?whep=<room>) plays it as a WHEP player does.

import { Api, ApiError, Session, WhipSession, tokenSubject } from './onair.js';
import { HlsPlayer, hlsUrl } from './hls.js';

const POLL_MS = 2000;
const $ = (sel) => document.querySelector(sel);

const el = {
  me: $('#me'), meImage: $('#me-image'), meAvatar: $('#me-avatar'), identityError: $('#identity-error'),
  banner: $('#banner'), transport: $('#transport'),
  studio: $('#studio'), studioBadge: $('#studio-badge'), studioStatus: $('#studio-status'),
  studioCount: $('#studio-live-count'), preview: $('#preview'), previewPlaceholder: $('#preview-placeholder'),
  golive: $('#golive'), title: $('#title'), cameraBtn: $('#camera-btn'), goliveBtn: $('#golive-btn'), endBtn: $('#end-btn'),
  useWhip: $('#use-whip'), streamKey: $('#stream-key'), streamKeyField: $('#stream-key-field'),
  player: $('#player'), playerAvatar: $('#player-avatar'), playerTitle: $('#player-title'), playerVia: $('#player-via'),
  playerPresenter: $('#player-presenter'), playerCount: $('#player-count'), leaveBtn: $('#leave-btn'),
  remote: $('#remote'), overlay: $('#watch-overlay'), watchState: $('#watch-state'), watchDetail: $('#watch-detail'),
  retryBtn: $('#retry-btn'), unmuteBtn: $('#unmute-btn'), stats: $('#watch-stats'),
  layout: $('main.layout'), rooms: $('#rooms'), roomsEmpty: $('#rooms-empty'), roomsTotal: $('#rooms-total'),
};

const state = {
  api: null,
  rooms: [],
  camera: null, // the local MediaStream, while the camera is on
  presenting: null, // { email, roomId, title, session, live, whip }
  watching: null, // { email, roomId, session, state, clickedAt, joinMs, whep }
  polling: null,
};

// ---- identity ---------------------------------------------------------------

const store = {
  get(k) { try { return localStorage.getItem(k) || ''; } catch { return ''; } },
  set(k, v) { try { localStorage.setItem(k, v); } catch { /* private mode */ } },
};

function identity() { return el.me.value.trim(); }

// checkIdentity returns the identity if it can be sent as the `email`
// header (printable ASCII), else shows why not and returns ''.
function checkIdentity() {
  const id = identity();
  let problem = '';
  if (!id) problem = 'Type your name or email first: it identifies you to the server.';
  else if (!/^[\x20-\x7e]+$/.test(id)) problem = 'Use plain letters, digits and symbols (ASCII) in your name or email.';
  el.identityError.textContent = problem;
  el.identityError.hidden = !problem;
  if (problem) el.me.focus();
  return problem ? '' : id;
}

function displayName(id) {
  return id.includes('@') ? id.slice(0, id.indexOf('@')) : id;
}

function hash(s) {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

// avatarFor draws initials on a colour picked from the seed, as an SVG data
// URL: every room has a profile image, with nothing fetched from elsewhere.
function avatarFor(seed) {
  const name = displayName(seed || '?');
  const words = name.split(/[\s._-]+/).filter(Boolean);
  const initials = (words.length > 1 ? words[0][0] + words[1][0] : name.slice(0, 2)).toUpperCase();
  const hue = hash(seed || '?') % 360;
  const text = initials.replace(/[<>&"']/g, '');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" height="64" rx="32" fill="hsl(${hue},55%,42%)"/>`
    + `<text x="32" y="41" font-family="sans-serif" font-size="24" font-weight="700" text-anchor="middle" fill="#fff">${text}</text></svg>`;
  return `data:image/svg+xml,${encodeURIComponent(svg)}`;
}

// safeImage keeps only image URLs a page may load: http(s) and data:image.
function safeImage(url) {
  if (!url) return '';
  try {
    const u = new URL(url, location.href);
    if (u.protocol === 'http:' || u.protocol === 'https:') return u.href;
    if (u.protocol === 'data:' && /^data:image\//i.test(url)) return url;
  } catch { /* not a URL */ }
  return '';
}

function setAvatar(img, url, seed) {
  const fallback = avatarFor(seed);
  img.onerror = () => { img.onerror = null; img.src = fallback; };
  img.src = safeImage(url) || fallback;
}

function myProfileUrl(id) { return safeImage(el.meImage.value.trim()) || avatarFor(id); }

function renderIdentity() {
  setAvatar(el.meAvatar, el.meImage.value.trim(), identity() || '?');
}

function lockIdentity(locked) {
  el.me.readOnly = locked;
  el.meImage.readOnly = locked;
  el.me.title = locked ? 'End your broadcast or leave the room to change who you are.' : '';
}

// ---- messages ---------------------------------------------------------------

function messageFor(err) {
  if (err instanceof ApiError) {
    switch (err.code) {
      case 'ALREADY_IN': return `“${identity()}” is already live or watching (maybe in another tab). End that first, or use another name.`;
      case 'NO_ROOM': return 'That broadcast has already ended.';
      case 'NO_USER': return 'The server does not know you in that room any more.';
      default: return `${err.message} (${err.code})`;
    }
  }
  if (err && err.name === 'NotAllowedError') return 'Camera or microphone permission was denied. Allow them in the address bar and try again.';
  if (err && err.name === 'NotFoundError') return 'No camera or microphone was found.';
  if (err && err.name === 'NotReadableError') return 'The camera or microphone is busy in another application.';
  return (err && err.message) || String(err);
}

function banner(text) {
  el.banner.textContent = text || '';
  el.banner.hidden = !text;
}

// ---- room list --------------------------------------------------------------

function countOf(room) { return Number.parseInt(room.count, 10) || 0; }

function watchingText(n) { return `${n} watching`; }

// renderRooms updates the list in place, keyed by room id, so that a button
// under the pointer is never replaced by a poll.
function renderRooms(rooms, askedAt = null) {
  state.rooms = rooms;
  const seen = new Set();
  let prev = null;
  for (const room of rooms) {
    seen.add(room.roomId);
    let li = [...el.rooms.children].find((c) => c.dataset.roomId === room.roomId);
    if (!li) li = roomCard(room);
    fillRoomCard(li, room);
    const want = prev ? prev.nextSibling : el.rooms.firstChild;
    if (li !== want) el.rooms.insertBefore(li, want);
    prev = li;
  }
  for (const li of [...el.rooms.children]) if (!seen.has(li.dataset.roomId)) li.remove();
  el.roomsEmpty.hidden = rooms.length > 0;
  const viewers = rooms.reduce((n, r) => n + countOf(r), 0);
  el.roomsTotal.textContent = rooms.length ? `${rooms.length} live · ${viewers} watching` : '';

  const w = state.watching;
  if (w) {
    const room = rooms.find((r) => r.roomId === w.roomId);
    if (room) fillPlayerInfo(room);
    // WHEP has no stopCommunication: a room gone from a list asked for
    // after the player was answered has ended.
    else if (w.whep && w.answeredAt != null && askedAt != null && askedAt > w.answeredAt) whepEnded(w);
  }
  const p = state.presenting;
  if (p) {
    const room = rooms.find((r) => r.roomId === p.roomId);
    el.studioCount.querySelector('.n').textContent = room ? countOf(room) : 0;
  }
}

function roomCard(room) {
  const li = document.createElement('li');
  li.className = 'room';
  li.dataset.roomId = room.roomId;
  const img = document.createElement('img');
  img.className = 'avatar';
  img.alt = '';
  img.width = 48;
  img.height = 48;
  const body = document.createElement('div');
  body.className = 'room-body';
  const title = document.createElement('p');
  title.className = 'title';
  const who = document.createElement('p');
  who.className = 'presenter muted';
  const meta = document.createElement('p');
  meta.className = 'meta';
  const live = document.createElement('span');
  live.className = 'badge';
  live.dataset.state = 'live';
  live.textContent = 'LIVE';
  const count = document.createElement('span');
  count.className = 'count';
  meta.append(live, count);
  body.append(title, who, meta);
  const btn = document.createElement('button');
  btn.type = 'button';
  btn.className = 'watch primary';
  btn.addEventListener('click', () => {
    const clickedAt = performance.now();
    watch(li.dataset.roomId, clickedAt);
  });
  const whep = document.createElement('button');
  whep.type = 'button';
  whep.className = 'watch-whep secondary';
  whep.textContent = 'WHEP';
  whep.title = 'Watch with WHEP, as a WHEP player does (no WebSocket, no name needed)';
  whep.addEventListener('click', () => {
    const clickedAt = performance.now();
    watchWhep(li.dataset.roomId, clickedAt);
  });
  const hls = document.createElement('button');
  hls.type = 'button';
  hls.className = 'watch-hls secondary';
  hls.textContent = 'HLS';
  hls.title = 'Watch over Low-Latency HLS, as a CDN audience does (2–3 s behind)';
  hls.addEventListener('click', () => watchHls(li.dataset.roomId, performance.now()));
  const actions = document.createElement('div');
  actions.className = 'actions';
  actions.append(btn, whep, hls);
  li.append(img, body, actions);
  return li;
}

function fillRoomCard(li, room) {
  const img = li.querySelector('img');
  if (img.dataset.src !== (room.profileUrl || '')) {
    img.dataset.src = room.profileUrl || '';
    setAvatar(img, room.profileUrl, room.roomId);
  }
  li.querySelector('.title').textContent = room.title || '(untitled)';
  li.querySelector('.title').title = room.title || '';
  li.querySelector('.presenter').textContent = displayName(room.roomId);
  li.querySelector('.presenter').title = room.roomId;
  const n = countOf(room);
  const count = li.querySelector('.count');
  count.dataset.count = String(n);
  count.textContent = watchingText(n);
  const btn = li.querySelector('button.watch');
  const mine = state.presenting && state.presenting.roomId === room.roomId;
  const w = state.watching;
  const watching = w && w.roomId === room.roomId && (w.state === 'connecting' || w.state === 'playing');
  li.classList.toggle('mine', !!mine);
  li.classList.toggle('current', !!watching);
  btn.disabled = !!(mine || watching);
  btn.textContent = mine ? 'You' : watching ? 'Watching' : 'Watch';
  const whep = li.querySelector('button.watch-whep');
  whep.disabled = !!(mine || watching);
  whep.hidden = !!(mine || watching);
}

async function refreshRooms() {
  if (!state.api) return;
  try {
    const askedAt = performance.now();
    renderRooms(await state.api.rooms(), askedAt);
    banner('');
  } catch (err) {
    banner(`Cannot reach the server: ${messageFor(err)}. Retrying…`);
  }
}

function startPolling() {
  if (state.polling) return;
  const tick = async () => {
    await refreshRooms();
    state.polling = setTimeout(tick, POLL_MS);
  };
  state.polling = setTimeout(tick, 0);
}

// ---- going live -------------------------------------------------------------

function setStudio(kind, text) {
  el.studio.dataset.state = kind;
  el.studioStatus.dataset.state = kind;
  el.studioStatus.textContent = text;
  const badges = {
    idle: 'Off air', preview: 'Preview', starting: 'Camera…', connecting: 'Connecting…',
    live: 'LIVE', ended: 'Ended', failed: 'Failed',
  };
  el.studioBadge.dataset.state = kind;
  el.studioBadge.textContent = badges[kind] || kind;
  const active = kind === 'connecting' || kind === 'live';
  el.goliveBtn.hidden = active;
  el.endBtn.hidden = !active;
  el.cameraBtn.hidden = active;
  el.title.readOnly = active;
  el.useWhip.disabled = active;
  el.streamKey.readOnly = active;
  el.studioCount.hidden = kind !== 'live';
}

async function startCamera() {
  if (state.camera) return state.camera;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error('The camera needs a secure page: open this page over HTTPS (start onair with -tls-self-signed or -tls-cert) or on http://localhost.');
  }
  if (state.presenting) el.studioStatus.textContent = 'Asking for your camera and microphone…';
  else setStudio('starting', 'Asking for your camera and microphone…');
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: true,
    video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
  });
  state.camera = stream;
  el.preview.srcObject = stream;
  el.previewPlaceholder.hidden = true;
  el.cameraBtn.textContent = 'Stop camera';
  return stream;
}

function stopCamera() {
  if (!state.camera) return;
  for (const t of state.camera.getTracks()) t.stop();
  state.camera = null;
  el.preview.srcObject = null;
  el.previewPlaceholder.hidden = false;
  el.cameraBtn.textContent = 'Start camera';
}

async function toggleCamera() {
  if (state.camera) {
    stopCamera();
    setStudio('idle', 'Camera off.');
    return;
  }
  try {
    await startCamera();
    setStudio('preview', 'This is what your viewers will see. Type a title and go live.');
  } catch (err) {
    setStudio('failed', messageFor(err));
  }
}

async function goLive(ev) {
  ev.preventDefault();
  if (state.presenting) return;
  const email = checkIdentity();
  if (!email) return;
  if (state.watching) await leave();
  const title = el.title.value.trim() || `${displayName(email)} is live`;
  el.title.value = title;
  const p = { email, roomId: email, title, session: null, live: false, whip: el.useWhip.checked };
  state.presenting = p;
  lockIdentity(true);
  setStudio('connecting', 'Starting…');
  if (p.whip) {
    goLiveWhip(p);
    return;
  }
  let created = false;
  try {
    const stream = await startCamera();
    if (state.presenting !== p) return; // ended while the camera started
    setStudio('connecting', 'Creating your room…');
    const room = await state.api.goLive(email, { roomId: p.roomId, title, profileUrl: myProfileUrl(email) });
    created = true;
    p.roomId = room.roomId;
    if (state.presenting !== p) {
      // Ended while the room was being created: do not leave it behind.
      state.api.endLive(email).catch(() => {});
      return;
    }
    const session = new Session({ api: state.api, role: 'presenter', email, roomId: p.roomId, stream });
    p.session = session;
    session.addEventListener('connected', () => {
      if (state.presenting !== p) return;
      p.live = true;
      setStudio('live', `You are live as “${displayName(email)}”. Viewers can find you in the list.`);
      refreshRooms();
    });
    session.addEventListener('notice', (e) => {
      if (state.presenting === p) el.studioStatus.textContent = e.detail;
    });
    session.addEventListener('ended', (e) => presenterStopped(p, 'ended', `Your broadcast was ended by the server: ${e.detail}`));
    session.addEventListener('failed', (e) => {
      presenterStopped(p, 'failed', e.detail);
      state.api.endLive(email).catch(() => {}); // release the room if it is still there
    });
    setStudio('connecting', 'Connecting your camera to the server…');
    await session.start();
  } catch (err) {
    if (state.presenting !== p) return;
    presenterStopped(p, 'failed', messageFor(err));
    if (created) state.api.endLive(email).catch(() => {});
  }
}

// goLiveWhip goes live as a WHIP encoder does: one POST to /whip/{room}
// with the title and profile image in the query creates the room and
// negotiates the media; the session's DELETE ends it.
async function goLiveWhip(p) {
  try {
    const stream = await startCamera();
    if (state.presenting !== p) return;
    const session = new WhipSession({
      api: state.api, kind: 'whip', roomId: p.roomId, stream, token: el.streamKey.value.trim(),
      query: { title: p.title, profileUrl: myProfileUrl(p.email) },
    });
    p.session = session;
    session.addEventListener('connected', () => {
      if (state.presenting !== p) return;
      p.live = true;
      setStudio('live', `You are live over WHIP as “${p.roomId}”. Viewers can find you in the list.`);
      refreshRooms();
    });
    session.addEventListener('notice', (e) => {
      if (state.presenting === p) el.studioStatus.textContent = e.detail;
    });
    session.addEventListener('dropped', (e) => presenterStopped(p, 'failed', e.detail));
    setStudio('connecting', 'Publishing your camera with WHIP…');
    await session.start();
  } catch (err) {
    if (state.presenting !== p) return;
    presenterStopped(p, 'failed', messageFor(err));
  }
}

function presenterStopped(p, kind, text) {
  if (state.presenting !== p) return;
  state.presenting = null;
  if (p.session) p.session.close();
  stopCamera();
  lockIdentity(false);
  setStudio(kind, text);
  refreshRooms();
}

async function endBroadcast() {
  const p = state.presenting;
  if (!p) return;
  el.endBtn.disabled = true;
  if (p.whip) {
    // DELETE of the WHIP session ends the room: viewers hear stopCommunication.
    const status = await (p.session ? p.session.close() : Promise.resolve(0));
    const ok = status === 200 || status === 404;
    presenterStopped(p, ok ? 'ended' : 'failed', ok ? 'Broadcast ended. Your viewers have been told.'
      : `Ending the broadcast: the server answered ${status || 'nothing'}.`);
    el.endBtn.disabled = false;
    return;
  }
  try {
    await state.api.endLive(p.email); // viewers hear stopCommunication
    presenterStopped(p, 'ended', 'Broadcast ended. Your viewers have been told.');
  } catch (err) {
    const gone = err instanceof ApiError && (err.code === 'NO_ROOM' || err.code === 'NO_SESSION');
    presenterStopped(p, gone ? 'ended' : 'failed', gone ? 'Broadcast ended.' : `Ending the broadcast: ${messageFor(err)}`);
  } finally {
    el.endBtn.disabled = false;
  }
}

// ---- watching ---------------------------------------------------------------

const watchTexts = {
  connecting: 'Connecting…',
  playing: 'Playing',
  ended: 'Ended by the presenter',
  failed: 'Failed',
};

function setWatch(w, kind, detail) {
  if (state.watching !== w) return;
  w.state = kind;
  el.player.dataset.state = kind;
  el.overlay.dataset.state = kind;
  el.watchState.dataset.state = kind;
  el.watchState.textContent = watchTexts[kind];
  el.watchDetail.textContent = detail || '';
  el.overlay.hidden = kind === 'playing';
  el.retryBtn.hidden = kind !== 'failed';
  const over = kind === 'ended' || kind === 'failed';
  el.leaveBtn.textContent = over ? 'Back to rooms' : 'Leave';
  el.playerCount.hidden = over;
  if (over) {
    el.unmuteBtn.hidden = true;
    el.stats.textContent = '';
    renderRooms(state.rooms);
  }
}

function fillPlayerInfo(room) {
  el.playerTitle.textContent = room.title || '(untitled)';
  el.playerPresenter.textContent = displayName(room.roomId);
  el.playerPresenter.title = room.roomId;
  if (el.playerAvatar.dataset.src !== (room.profileUrl || '') || !el.playerAvatar.src) {
    el.playerAvatar.dataset.src = room.profileUrl || '';
    setAvatar(el.playerAvatar, room.profileUrl, room.roomId);
  }
  if (room.count !== undefined) {
    const n = countOf(room);
    el.playerCount.querySelector('.n').textContent = watchingText(n);
    el.playerCount.dataset.count = String(n);
  }
}

async function watch(roomId, clickedAt = performance.now()) {
  const email = checkIdentity();
  if (!email) return;
  if (state.presenting) {
    banner('You are live: end your broadcast to watch another one.');
    return;
  }
  if (state.watching) await leave();
  if (state.watching) return; // another click won the race
  const w = { email, roomId, session: null, state: 'connecting', clickedAt, joinMs: null, joined: false, whep: false };
  openPlayer(w);
  setWatch(w, 'connecting', 'Joining the room…');
  renderRooms(state.rooms);
  try {
    const room = await state.api.view(email, roomId);
    w.joined = true;
    if (state.watching !== w) {
      state.api.leave(email).catch(() => {});
      return;
    }
    fillPlayerInfo(room);
    const session = new Session({ api: state.api, role: 'viewer', email, roomId });
    w.session = session;
    showMedia(w, session);
    session.addEventListener('ended', (e) => {
      setWatch(w, 'ended', e.detail || 'The presenter stopped streaming.');
      w.joined = false; // the server has let us go with the room
      refreshRooms();
    });
    session.addEventListener('failed', (e) => {
      setWatch(w, 'failed', e.detail);
      releaseSeat(w);
    });
    setWatch(w, 'connecting', 'Connecting to the broadcast…');
    await session.start();
  } catch (err) {
    if (state.watching !== w) return;
    if (w.session) w.session.close();
    setWatch(w, 'failed', messageFor(err));
    releaseSeat(w);
  }
}

// showMedia plays what a viewer's session (WebSocket or WHEP) receives for
// the watch w, and says how it is going.
function showMedia(w, session) {
  session.addEventListener('track', (e) => {
    if (state.watching !== w) return;
    if (el.remote.srcObject !== e.detail) el.remote.srcObject = e.detail;
    play(w);
  });
  session.addEventListener('connected', () => {
    if (w.state === 'connecting') setWatch(w, 'connecting', 'Connected, waiting for the first picture…');
  });
  session.addEventListener('notice', (e) => {
    if (w.state === 'playing') el.stats.textContent = e.detail;
  });
}

// openPlayer makes w the room being watched and shows the player.
function openPlayer(w) {
  state.watching = w;
  lockIdentity(true);
  el.studio.hidden = true;
  el.player.hidden = false;
  el.playerVia.hidden = !w.whep;
  el.layout.dataset.mode = 'watching';
  el.stats.textContent = '';
  el.playerAvatar.removeAttribute('src');
  fillPlayerInfo(state.rooms.find((r) => r.roomId === w.roomId) || { roomId: w.roomId });
}

// watchWhep plays a room as a WHEP player does: one POST to /whep/{room},
// no WebSocket and no name (the server makes one up). Nothing tells it when
// the broadcast ends: it sees the media connection drop, or the room leave
// the list.
async function watchWhep(roomId, clickedAt = performance.now()) {
  if (state.presenting) {
    banner('You are live: end your broadcast to watch another one.');
    return;
  }
  if (state.watching) await leave();
  if (state.watching) return;
  const w = { email: null, roomId, session: null, state: 'connecting', clickedAt, joinMs: null, joined: false, whep: true, answeredAt: null };
  openPlayer(w);
  setWatch(w, 'connecting', 'Asking the server for the broadcast (WHEP)…');
  renderRooms(state.rooms);
  // ?layer=h|m|l in the page's address pins a simulcast layer (docs/simulcast.md).
  const layer = new URLSearchParams(location.search).get('layer');
  const session = new WhipSession({ api: state.api, kind: 'whep', roomId, query: layer ? { layer } : null });
  w.session = session;
  showMedia(w, session);
  session.addEventListener('dropped', (e) => whepDropped(w, e.detail));
  try {
    await session.start();
    if (session.answered) w.answeredAt = performance.now();
    if (state.watching === w && w.state === 'connecting' && w.session.pc.connectionState !== 'connected') {
      setWatch(w, 'connecting', 'Connecting to the broadcast…');
    }
  } catch (err) {
    if (state.watching !== w) return;
    session.close();
    setWatch(w, 'failed', messageFor(err));
  }
}

// watchHls plays a room over Low-Latency HLS, where the browser can
// (natively, or with hls.js on the page). No seat is taken: HLS viewers
// are not in the room's count.
async function watchHls(roomId, clickedAt = performance.now()) {
  if (state.presenting) {
    banner('You are live: end your broadcast to watch another one.');
    return;
  }
  if (state.watching) await leave();
  if (state.watching) return;
  const w = { email: null, roomId, session: null, state: 'connecting', clickedAt, joinMs: null, joined: false, hls: true };
  openPlayer(w);
  if (!HlsPlayer.canPlay(el.remote)) {
    setWatch(w, 'failed', 'This browser cannot play HLS without hls.js: open the HLS address in Safari or a player.');
    return;
  }
  setWatch(w, 'connecting', 'Loading the HLS stream…');
  el.remote.srcObject = null;
  const player = new HlsPlayer(el.remote, hlsUrl(roomId, state.api.token));
  w.session = player;
  player.addEventListener('failed', (e) => {
    if (state.watching === w) setWatch(w, 'failed', e.detail);
  });
  try {
    await player.start();
    if (state.watching === w) play(w);
  } catch (err) {
    if (state.watching !== w) return;
    player.close();
    setWatch(w, 'failed', err.message);
  }
}

// whepDropped decides, from the room list, whether a WHEP player's lost
// connection is the end of the broadcast or a failure.
async function whepDropped(w, reason) {
  if (state.watching !== w || (w.state !== 'connecting' && w.state !== 'playing')) return;
  let live = true;
  try {
    const askedAt = performance.now();
    const rooms = await state.api.rooms();
    live = rooms.some((r) => r.roomId === w.roomId);
    renderRooms(rooms, askedAt);
  } catch { /* the server is unreachable: a failure */ }
  if (state.watching !== w || (w.state !== 'connecting' && w.state !== 'playing')) return;
  if (!live) {
    whepEnded(w);
    return;
  }
  w.session.close();
  setWatch(w, 'failed', reason);
}

function whepEnded(w) {
  if (state.watching !== w || (w.state !== 'connecting' && w.state !== 'playing')) return;
  w.session.close({ remote: false }); // the room's end ended the session on the server
  setWatch(w, 'ended', 'The presenter stopped streaming.');
}

// releaseSeat tells the server a failed viewer is gone, if it had a seat.
function releaseSeat(w) {
  if (!w.joined) return;
  w.joined = false;
  state.api.leave(w.email).catch(() => {}).finally(refreshRooms);
}

function play(w) {
  const video = el.remote;
  const firstFrame = () => {
    if (state.watching !== w || w.state !== 'connecting' || video.videoWidth === 0) return;
    w.joinMs = Math.round(performance.now() - w.clickedAt);
    setWatch(w, 'playing', '');
  };
  if ('requestVideoFrameCallback' in video) video.requestVideoFrameCallback(firstFrame);
  video.addEventListener('resize', firstFrame, { once: true });
  video.addEventListener('playing', firstFrame, { once: true });
  video.muted = false;
  video.play().catch((err) => {
    if (err.name !== 'NotAllowedError' || state.watching !== w) return;
    // Autoplay with sound was refused: play muted and offer to unmute.
    video.muted = true;
    el.unmuteBtn.hidden = false;
    video.play().catch(() => {});
  });
}

async function leave() {
  const w = state.watching;
  if (!w) return;
  state.watching = null;
  el.player.hidden = true;
  el.studio.hidden = false;
  delete el.layout.dataset.mode;
  el.unmuteBtn.hidden = true;
  lockIdentity(!!state.presenting);
  try {
    if (w.whep && w.session) await w.session.close(); // DELETE of the WHEP session
    if (w.joined) {
      w.joined = false;
      await state.api.leave(w.email);
    }
  } catch (err) {
    if (!(err instanceof ApiError && err.code === 'NO_USER')) banner(`Leaving the room: ${messageFor(err)}`);
  } finally {
    if (w.session) w.session.close();
    el.remote.srcObject = null;
    el.stats.textContent = '';
    refreshRooms();
  }
}

// showStats writes what a curious viewer wants to know, once a second.
async function showStats() {
  const w = state.watching;
  if (!w || w.state !== 'playing' || !w.session || !w.session.pc) return;
  const report = await w.session.pc.getStats();
  let video = null;
  report.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') video = s; });
  if (!video || state.watching !== w) return;
  const now = video.timestamp;
  const kbps = w.lastBytes != null ? Math.round(((video.bytesReceived - w.lastBytes) * 8) / (now - w.lastAt)) : null;
  w.lastBytes = video.bytesReceived;
  w.lastAt = now;
  const parts = [];
  if (video.frameWidth) parts.push(`${video.frameWidth}×${video.frameHeight}`);
  if (video.framesPerSecond) parts.push(`${Math.round(video.framesPerSecond)} fps`);
  if (kbps != null && kbps >= 0) parts.push(kbps >= 1000 ? `${(kbps / 1000).toFixed(1)} Mbit/s` : `${kbps} kbit/s`);
  if (w.joinMs != null) parts.push(`first picture ${(w.joinMs / 1000).toFixed(2)} s after joining`);
  el.stats.textContent = parts.join(' · ');
}

// ---- token ------------------------------------------------------------------

// useToken takes the token from ?token= (once) and the Token field: every
// call then carries it, and the identity is the token's subject (the server
// takes it from the token anyway). It is not stored: it is a credential.
function useToken() {
  el.token = $('#token');
  const fromURL = new URLSearchParams(location.search).get('token');
  if (fromURL) el.token.value = fromURL;
  const apply = () => {
    const token = el.token.value.trim();
    if (state.api) state.api.token = token;
    const sub = tokenSubject(token);
    if (sub && identity() !== sub) {
      el.me.value = sub;
      store.set('onair.email', sub);
      renderIdentity();
    }
  };
  el.token.addEventListener('input', apply);
  apply();
}

// ---- start ------------------------------------------------------------------

// A hook for the browser's developer tools and the end-to-end tests: the
// current sessions (their RTCPeerConnection is .pc) and the watch state.
window.onair = {
  get presenter() { return state.presenting && state.presenting.session; },
  get viewer() { return state.watching && state.watching.session; },
  get watch() {
    const w = state.watching;
    return w && { roomId: w.roomId, state: w.state, joinMs: w.joinMs };
  },
};

async function main() {
  el.transport.textContent = location.protocol === 'https:' ? 'HTTPS and WSS' : 'HTTP and WS';
  el.me.value = store.get('onair.email');
  el.meImage.value = store.get('onair.profileUrl');
  renderIdentity();
  el.me.addEventListener('input', () => {
    store.set('onair.email', identity());
    el.identityError.hidden = true;
    renderIdentity();
  });
  el.meImage.addEventListener('input', () => {
    store.set('onair.profileUrl', el.meImage.value.trim());
    renderIdentity();
  });
  el.identity = $('#identity');
  el.identity.addEventListener('submit', (e) => e.preventDefault());
  el.golive.addEventListener('submit', goLive);
  el.cameraBtn.addEventListener('click', toggleCamera);
  el.endBtn.addEventListener('click', endBroadcast);
  el.leaveBtn.addEventListener('click', leave);
  el.retryBtn.addEventListener('click', () => {
    const w = state.watching;
    if (w && w.whep) watchWhep(w.roomId);
    else if (w) watch(w.roomId);
  });
  el.useWhip.addEventListener('change', () => { el.streamKeyField.hidden = !el.useWhip.checked; });
  // A WHEP or WHIP session has no WebSocket whose close the server would
  // notice: DELETE it when the page goes away.
  window.addEventListener('pagehide', () => {
    const w = state.watching;
    if (w && w.whep && w.session) w.session.close();
    const p = state.presenting;
    if (p && p.whip && p.session) p.session.close();
  });
  el.unmuteBtn.addEventListener('click', () => {
    el.remote.muted = false;
    el.unmuteBtn.hidden = true;
  });
  setStudio('idle', el.studioStatus.textContent);
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    el.studioStatus.textContent = 'Watching works here, but going live needs a secure page: open it over HTTPS or on http://localhost.';
  }
  setInterval(() => { showStats().catch(() => {}); }, 1000);

  useToken(); // ?token= or the Token field
  const wanted = new URLSearchParams(location.search).get('base');
  for (;;) {
    try {
      state.api = await Api.discover(wanted, el.token.value.trim());
      break;
    } catch (err) {
      banner(`Cannot reach the onair server (${messageFor(err)}). Retrying… If the API is not under /signal, open this page with ?base=/your-base-path.`);
      await new Promise((r) => { setTimeout(r, POLL_MS); });
    }
  }
  banner('');
  document.body.dataset.ready = 'true';
  startPolling();
  // /?whep=<room> opens the WHEP player on that room.
  const whepRoom = new URLSearchParams(location.search).get('whep');
  if (whepRoom) watchWhep(whepRoom);
}

main();
