// Package wsapi serves the signalling WebSocket (/ws): SDP offers and
// answers, trickled ICE candidates and stopCommunication, one JSON object
// per text frame (docs/protocol.md). It is a thin transport: it parses, calls the
// broadcast domain and renders the result, and holds no broadcast state beyond
// the connections it serves.
package wsapi

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/media"
	"github.com/onair-live/onair/internal/randid"
	"github.com/onair-live/onair/internal/waitgroup"
)

// Broadcasts is what the WebSocket needs of the domain.
type Broadcasts interface {
	Present(ctx context.Context, sess live.Session, who auth.Principal, o live.Offer) (string, error)
	View(ctx context.Context, sess live.Session, who auth.Principal, o live.Offer) (string, error)
	AddCandidate(sessionID string, c media.Candidate) error
	SessionClosed(sessionID string)
	SetLayer(sessionID, layer string) error
}

// Config bounds what one connection may do.
type Config struct {
	// MaxMessageBytes: a larger message is refused with an error message.
	MaxMessageBytes int64
	// OfferTimeout bounds the negotiation of one offer.
	OfferTimeout time.Duration
	// WriteTimeout: a client that does not read for this long is dropped.
	WriteTimeout time.Duration
	// OriginPatterns are the origins allowed to open the WebSocket besides
	// the server's own (empty: any origin).
	OriginPatterns []string
	Logger         *slog.Logger

	// Auth authenticates the upgrade (nil: trusted-header mode, where each
	// message's email is believed); see access.go.
	Auth *auth.Authenticator
	// MessagesPerSecond bounds each connection's messages (0: no limit), in
	// bursts of twice as many.
	MessagesPerSecond float64
	// OnRejected observes refusals by reason (the Reject* constants), for
	// metrics; it must not block.
	OnRejected func(reason string)

	// Liveness (liveness.go): a connection is pinged every PingInterval
	// and closed as dropped after IdleTimeout without a pong or a message,
	// or after BindTimeout without an accepted offer.
	PingInterval, IdleTimeout, BindTimeout time.Duration
}

// Server accepts WebSocket connections.
type Server struct {
	svc Broadcasts
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	sessions map[*session]struct{}
	closing  bool
	wg       sync.WaitGroup
}

// NewServer returns a WebSocket server over the broadcast domain.
func NewServer(svc Broadcasts, cfg Config) *Server {
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 64 << 10
	}
	if cfg.OfferTimeout <= 0 {
		cfg.OfferTimeout = 15 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = defaultPingInterval
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = defaultIdleTimeout
	}
	if cfg.BindTimeout <= 0 {
		cfg.BindTimeout = defaultBindTimeout
	}
	return &Server{svc: svc, cfg: cfg, log: cfg.Logger.With("component", "signal"),
		sessions: map[*session]struct{}{}}
}

// ServeHTTP upgrades the request and serves the connection until it closes.
// With tokens on, the upgrade needs one (in the token query parameter, or
// Authorization: Bearer), and the connection acts for its subject only.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	who, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	opts := &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled}
	if len(s.cfg.OriginPatterns) == 0 {
		opts.InsecureSkipVerify = true // any origin: no pattern was configured
	} else {
		opts.OriginPatterns = s.cfg.OriginPatterns
	}
	h := newHeard()
	h.watch(opts)
	conn, err := websocket.Accept(w, r, opts)
	if err != nil {
		s.log.Info("WebSocket upgrade refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	sess := newSession(s, conn, randid.New(), r.RemoteAddr, who, h)
	sess.token = requestToken(r)
	if !s.track(sess) {
		conn.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	defer s.untrack(sess)
	sess.run(r.Context())
}

func (s *Server) track(sess *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
	s.wg.Done()
}

// Sessions is the number of open connections.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Shutdown closes every connection after sending what is queued for it
// (such as stopCommunication), and waits for their handlers to finish.
func (s *Server) Shutdown(ctx context.Context) {
	s.mu.Lock()
	s.closing = true
	all := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		all = append(all, sess)
	}
	s.mu.Unlock()
	for _, sess := range all {
		sess.closeAfterFlush(websocket.StatusGoingAway, "server shutting down")
	}
	waitgroup.Await(&s.wg, ctx.Done(), func() {
		for _, sess := range all {
			sess.conn.CloseNow()
		}
	})
}
