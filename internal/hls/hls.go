// Package hls serves live rooms as Low-Latency HLS (CMAF/fMP4 segments and
// parts, blocking playlist reloads, preload hints) for audiences behind a
// CDN, next to the WebRTC tier. A room's muxer (gohlslib's) is a media.Sink
// attached to the room's pipeline on the first HLS request and released a
// while after the last; it is fed the presenter's RTP packets, put back in
// order and assembled into frames by internal/record's depacketizer.
//
// It is a transport: it parses HTTP, checks tokens as WHEP does, and asks
// the domain to attach it to a room (which checks the view grant). It does
// not touch rooms' membership: HLS viewers are counted here, apart from
// the room's WebRTC viewers.
package hls

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/onair-live/onair/internal/apierr"
	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/media"
)

// Rooms is what the HLS tier needs of the domain.
type Rooms interface {
	AttachSink(who auth.Principal, roomID, name string, sink media.Sink) (media.Endpoint, error)
}

// Config configures the HLS tier.
type Config struct {
	// Auth, with tokens on, authenticates every request by its token
	// (Authorization: Bearer, or ?token=); nil or open: anyone may watch.
	Auth *auth.Authenticator
	// Segment and Part are the least durations of segments and parts
	// (defaults 1 s and 200 ms).
	Segment, Part time.Duration
	// IdleTimeout: a room's muxer stops this long after its last request
	// (default 30 s).
	IdleTimeout time.Duration
	// StartTimeout bounds how long a first request waits for the room's
	// tracks (default 10 s).
	StartTimeout time.Duration
	Logger       *slog.Logger
}

// viewerWindow: an HLS viewer is a client that asked for a playlist this
// recently (players reload them at least every target duration).
const viewerWindow = 10 * time.Second

// Server serves /hls/{room}/{file}.
type Server struct {
	rooms Rooms
	cfg   Config
	log   *slog.Logger
	mux   *http.ServeMux

	mu      sync.Mutex
	streams map[string]*stream
	closed  bool

	stopSweep context.CancelFunc
	swept     chan struct{}
}

// New returns the HLS handler and starts its sweeper; Close stops both.
func New(rooms Rooms, cfg Config) *Server {
	if cfg.Segment <= 0 {
		cfg.Segment = time.Second
	}
	if cfg.Part <= 0 {
		cfg.Part = 200 * time.Millisecond
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{rooms: rooms, cfg: cfg, log: cfg.Logger.With("component", "hls"), streams: map[string]*stream{},
		stopSweep: cancel, swept: make(chan struct{})}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /hls/{room}/{file}", s.serve)
	s.mux.HandleFunc("OPTIONS /hls/{room}/{file}", s.options)
	go s.sweep(ctx)
	return s
}

// ServeHTTP serves /hls/. The server's origin policy (which sets
// Access-Control-Allow-Origin for the origins it allows, and refuses the
// others) applies as for WHEP; this adds what players need of it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Origin") != "" {
		h := w.Header()
		h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Range")
		h.Set("Access-Control-Expose-Headers", "Content-Length, Content-Range")
		h.Set("Access-Control-Max-Age", "86400")
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) options(w http.ResponseWriter, _ *http.Request) {
	w.WriteHeader(http.StatusNoContent)
}

func plain(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg + "\n"))
}

// serve answers one request for a playlist, an init file, a segment or a
// part of a room.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	roomID, file := r.PathValue("room"), r.PathValue("file")
	who, ok := s.authenticate(w, r, roomID)
	if !ok {
		return
	}
	st, err := s.stream(who, roomID)
	if err != nil {
		s.refuse(w, roomID, err)
		return
	}
	now := time.Now()
	st.lastRequest.Store(now.UnixNano())
	wait := time.NewTimer(s.cfg.StartTimeout)
	defer wait.Stop()
	select {
	case <-st.started:
	case <-wait.C:
		plain(w, http.StatusServiceUnavailable, "the room's media has not started yet; try again")
		return
	case <-r.Context().Done():
		return
	}
	if st.startErr != nil {
		plain(w, http.StatusNotFound, st.startErr.Error())
		return
	}
	if strings.HasSuffix(file, ".m3u8") {
		st.seen(viewerKey(who, r), now.UnixNano())
	}
	// A blocking playlist request waits for a part to come (and a first
	// request for the first segment): never let a server write timeout
	// cut it.
	_ = http.NewResponseController(w).SetWriteDeadline(now.Add(s.cfg.StartTimeout + 6*s.cfg.Segment))
	if strings.HasSuffix(file, "_stream.m3u8") && r.URL.Query().Has("_HLS_msn") {
		if r = st.blockingRequest(r); r == nil {
			plain(w, http.StatusNotFound, "this room's stream has ended")
			return
		}
	}
	cw := &cacheWriter{ResponseWriter: w, cache: cacheControl(file)}
	st.muxer.Handle(cw, r)
	if !cw.wrote {
		plain(w, http.StatusNotFound, "no such file in this room's stream (parts and segments expire after a few seconds)")
	}
}

// authenticate says who the request is from, or answers 401 or 403.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, roomID string) (auth.Principal, bool) {
	if s.cfg.Auth.Open() {
		return auth.Trusted("hls"), true
	}
	who, err := s.cfg.Auth.Authenticate(auth.TokenFrom(r.Header.Get("Authorization"), r.URL.Query().Get("token")), "")
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="onair"`)
		plain(w, http.StatusUnauthorized, "a valid token is required: Authorization: Bearer <token>, or ?token=<token> ("+err.Error()+")")
		return auth.Principal{}, false
	}
	if !who.CanView(roomID) {
		s.log.Info("HLS request forbidden", "room", roomID, "user", who.Subject)
		plain(w, http.StatusForbidden, who.Subject+" may not watch room "+roomID)
		return auth.Principal{}, false
	}
	return who, true
}

// refuse renders the domain's refusal to attach a muxer as plain text.
func (s *Server) refuse(w http.ResponseWriter, roomID string, err error) {
	var le *live.Error
	switch {
	case errors.Is(err, errClosed):
		plain(w, http.StatusServiceUnavailable, "the server is shutting down")
	case errors.As(err, &le) && le.Kind == live.KindForbidden:
		plain(w, http.StatusForbidden, apierr.Text(le))
	case errors.Is(err, live.ErrNoRoom), errors.Is(err, media.ErrReleased):
		plain(w, http.StatusNotFound, "no live broadcast in room "+roomID+" on this server")
	default:
		s.log.Warn("HLS muxer not attached", "room", roomID, "err", err)
		plain(w, http.StatusServiceUnavailable, "cannot serve this room now; try again")
	}
}

var errClosed = errors.New("hls: closed")

// stream returns the room's muxer, attaching a new one to the room if it
// has none.
func (s *Server) stream(who auth.Principal, roomID string) (*stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	if st := s.streams[roomID]; st != nil {
		return st, nil
	}
	st := newStream(s, roomID)
	ep, err := s.rooms.AttachSink(who, roomID, "hls:"+roomID, st)
	if err != nil {
		return nil, err
	}
	st.endpoint = ep
	s.streams[roomID] = st
	return st, nil
}

// forget drops a stream that closed.
func (s *Server) forget(st *stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streams[st.room] == st {
		delete(s.streams, st.room)
	}
}

// sweep stops muxers nobody asked anything of for IdleTimeout.
func (s *Server) sweep(ctx context.Context) {
	defer close(s.swept)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			var idle []*stream
			s.mu.Lock()
			for _, st := range s.streams {
				if now.UnixNano()-st.lastRequest.Load() > int64(s.cfg.IdleTimeout) {
					idle = append(idle, st)
				}
			}
			s.mu.Unlock()
			for _, st := range idle {
				st.log.Info("HLS muxer idle, stopping", "idle", s.cfg.IdleTimeout.String())
				st.stop()
			}
		}
	}
}

// Counts are the HLS tier's numbers, for metrics.
type Counts struct {
	Muxers  int // rooms with a running muxer
	Viewers int // clients that asked for a playlist in the last 10 s
}

// Counts counts muxers and viewers.
func (s *Server) Counts() Counts {
	s.mu.Lock()
	list := make([]*stream, 0, len(s.streams))
	for _, st := range s.streams {
		list = append(list, st)
	}
	s.mu.Unlock()
	since := time.Now().Add(-viewerWindow).UnixNano()
	c := Counts{Muxers: len(list)}
	for _, st := range list {
		c.Viewers += st.viewers(since)
	}
	return c
}

// Close stops every muxer and the sweeper. Requests that come later are
// answered 503.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	list := make([]*stream, 0, len(s.streams))
	for _, st := range s.streams {
		list = append(list, st)
	}
	s.mu.Unlock()
	s.stopSweep()
	<-s.swept
	for _, st := range list {
		st.stop()
	}
}

// viewerKey tells HLS viewers apart: the token's subject, or the client's
// address and user agent (behind a CDN, its edges count as the viewers).
func viewerKey(who auth.Principal, r *http.Request) string {
	if !who.Trusted {
		return "sub:" + who.Subject
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return host + " " + r.UserAgent()
}

// cacheControl is what a CDN may keep: segments and parts never change
// (their names carry a per-muxer prefix and a sequence number); the init
// file may change with the codec's parameters; playlists change with
// every part.
func cacheControl(file string) string {
	switch {
	case strings.HasSuffix(file, ".m3u8"):
		return "max-age=1"
	case strings.HasSuffix(file, "_init.mp4"):
		return "max-age=30"
	default:
		return "public, max-age=31536000, immutable"
	}
}

// cacheWriter sets Cache-Control on successful answers and notes whether
// the muxer answered at all (it says nothing of a file it does not have).
type cacheWriter struct {
	http.ResponseWriter
	cache string
	wrote bool
}

func (c *cacheWriter) WriteHeader(code int) {
	if c.wrote {
		return
	}
	c.wrote = true
	if code == http.StatusOK {
		c.Header().Set("Cache-Control", c.cache)
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *cacheWriter) Write(b []byte) (int, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (c *cacheWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
