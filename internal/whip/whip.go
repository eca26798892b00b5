// Package whip serves WHIP ingest (RFC 9725) and WHEP playback
// (draft-ietf-wish-whep) on the same rooms as the REST + WebSocket protocol: a room
// published over WHIP is listed, watched and counted like any other.
//
// It is a transport: it parses HTTP, calls the broadcast domain and renders
// its answers. Its only state is the table of WHIP/WHEP sessions it serves
// (their resource URLs and entity tags).
package whip

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/onair-live/onair/internal/apierr"
	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/media"
	"github.com/onair-live/onair/internal/randid"
)

// Broadcasts is what WHIP and WHEP need of the domain.
type Broadcasts interface {
	Publish(ctx context.Context, sess live.Session, who auth.Principal, req live.StartRequest, offer string) (string, error)
	Watch(ctx context.Context, sess live.Session, who auth.Principal, roomID, offer, layer string) (string, error)
	AddCandidate(sessionID string, c media.Candidate) error
	RestartICE(ctx context.Context, sessionID, ufrag, pwd string) (string, error)
	EndBroadcast(ctx context.Context, who auth.Principal) error
	Leave(ctx context.Context, who auth.Principal) error
}

// Config configures the WHIP and WHEP endpoints.
type Config struct {
	// Auth, when tokens are on, authenticates every request by its bearer
	// token (then stream keys are not used); nil or open: trusted mode,
	// with stream keys (access.go).
	Auth *auth.Authenticator
	// OnRejected observes refusals by reason, for metrics; it must not block.
	OnRejected func(reason string)
	// StreamKeys maps a room to the bearer token that may publish it.
	StreamKeys map[string]string
	// StreamKey, if set, may publish any room that has no key of its own.
	StreamKey    string
	ICEServers   []media.ICEServer
	MaxBodyBytes int64
	OfferTimeout time.Duration
	Logger       *slog.Logger

	// TURN, if set, gives more ICE servers for each request, with
	// credentials minted for it (the embedded TURN server).
	TURN func(r *http.Request) []media.ICEServer
	// RelayAuth, if set, verifies the token of a node that pulls a room as
	// a relay (POST /whep/{room}?relay={node}; relay.go); nil: no relays.
	RelayAuth func(token string) (auth.Principal, error)
	// OtherNode, if set, names the base URL of another node that takes
	// viewers, for a WHEP request this node refuses as busy (a 307).
	OtherNode func(ctx context.Context) (string, bool)
}

// Server serves /whip/ and /whep/.
type Server struct {
	svc Broadcasts
	cfg Config
	log *slog.Logger
	mux *http.ServeMux

	mu       sync.Mutex
	sessions map[string]*session
}

// kind is WHIP (a presenter) or WHEP (a viewer).
type kind string

const (
	kindWHIP kind = "whip"
	kindWHEP kind = "whep"
)

// session is one WHIP or WHEP resource. It implements live.Session: the
// domain's candidates are already in the answer (WHIP has no server-to-client
// trickle), and a stop simply retires the resource. It is a live.Releaser
// too, because the domain does not Stop a presenter whose room ends other
// than by its own DELETE (media lost, REST end, shutdown): without that, such
// a WHIP resource would stay in the table for good.
type session struct {
	srv    *Server
	id     string
	kind   kind
	roomID string
	who    auth.Principal // email: who.Subject
	relay  string         // the node pulling, for a relay's WHEP session (relay.go)

	mu   sync.Mutex
	etag string
}

var (
	_ live.Session  = (*session)(nil)
	_ live.Releaser = (*session)(nil)
)

func (s *session) ID() string                    { return s.id }
func (s *session) SendCandidate(media.Candidate) {}
func (s *session) Stop(live.StopReason)          { s.srv.forget(s) }
func (s *session) Released()                     { s.srv.forget(s) }

// New returns the WHIP/WHEP handler.
func New(svc Broadcasts, cfg Config) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	if cfg.OfferTimeout <= 0 {
		cfg.OfferTimeout = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{svc: svc, cfg: cfg, log: cfg.Logger.With("component", "whip"), sessions: map[string]*session{}}
	m := http.NewServeMux()
	for _, k := range []kind{kindWHIP, kindWHEP} {
		k := k
		m.HandleFunc("POST /"+string(k)+"/{room}", func(w http.ResponseWriter, r *http.Request) { s.create(w, r, k) })
		m.HandleFunc("OPTIONS /"+string(k)+"/{room}", s.options)
		m.HandleFunc("PATCH /"+string(k)+"/{room}/{session}", func(w http.ResponseWriter, r *http.Request) { s.patch(w, r, k) })
		m.HandleFunc("DELETE /"+string(k)+"/{room}/{session}", func(w http.ResponseWriter, r *http.Request) { s.delete(w, r, k) })
		m.HandleFunc("OPTIONS /"+string(k)+"/{room}/{session}", s.options)
	}
	s.mux = m
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Sessions is the number of live WHIP and WHEP resources.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func (s *Server) forget(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess.id)
	s.mu.Unlock()
}

func (s *Server) lookup(k kind, roomID, id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[id]
	if sess == nil || sess.kind != k || sess.roomID != roomID {
		return nil
	}
	return sess
}

// options answers CORS preflights and tells encoders what POST takes and
// which ICE servers to use.
func (s *Server) options(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Accept-Post", "application/sdp")
	s.linkICEServers(w, r)
	w.WriteHeader(http.StatusNoContent)
}

// create handles POST /whip/{room} and POST /whep/{room}.
func (s *Server) create(w http.ResponseWriter, r *http.Request, k kind) {
	roomID := r.PathValue("room")
	if !isSDP(r) {
		problem(w, http.StatusUnsupportedMediaType, "send the SDP offer with Content-Type: application/sdp")
		return
	}
	if node := r.URL.Query().Get("relay"); node != "" {
		s.createRelay(w, r, k, roomID, node) // relay.go
		return
	}
	who, ok := s.authenticate(w, r, k, roomID)
	if !ok {
		return
	}
	offer, status, err := s.readBody(w, r)
	if err != nil {
		problem(w, status, err.Error())
		return
	}
	q := r.URL.Query()
	sess := &session{srv: s, id: randid.New(), kind: k, roomID: roomID, who: who}
	s.mu.Lock()
	s.sessions[sess.id] = sess
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.OfferTimeout)
	defer cancel()
	var answer string
	if k == kindWHIP {
		title := q.Get("title")
		if title == "" {
			title = roomID
		}
		answer, err = s.svc.Publish(ctx, sess, who,
			live.StartRequest{RoomID: roomID, Title: title, ProfileURL: q.Get("profileUrl")}, offer)
	} else {
		answer, err = s.svc.Watch(ctx, sess, who, roomID, offer, q.Get("layer"))
	}
	if err != nil {
		s.forget(sess)
		s.renderError(w, r, k, roomID, err)
		return
	}
	s.log.Info("session created", "kind", string(k), "room", roomID, "user", who.Subject, "session", live.Tag(sess.id),
		"remote", r.RemoteAddr)
	s.created(w, r, sess, answer)
}

// created answers a POST whose offer was accepted: 201 with the answer and
// the session's resource URL.
func (s *Server) created(w http.ResponseWriter, r *http.Request, sess *session, answer string) {
	k, roomID := sess.kind, sess.roomID
	sess.mu.Lock()
	sess.etag = etagOf(sess.id, answer)
	etag := sess.etag
	sess.mu.Unlock()
	h := w.Header()
	h.Set("Content-Type", "application/sdp")
	h.Set("Location", "/"+string(k)+"/"+url.PathEscape(roomID)+"/"+sess.id)
	h.Set("ETag", etag)
	s.linkICEServers(w, r)
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

// renderError renders a domain failure as a WHIP/WHEP status, by its kind
// (apierr.Status, as the REST API does), with its text as the body.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, k kind, roomID string, err error) {
	status := http.StatusInternalServerError
	var e *live.Error
	if errors.As(err, &e) {
		status = apierr.Status(e.Kind)
	}
	switch {
	case errors.Is(err, live.ErrNotReady):
		w.Header().Set("Retry-After", "1")
	case errors.Is(err, live.ErrNodeBusy):
		if s.redirect(w, r, k, roomID) { // relay.go
			return
		}
		w.Header().Set("Retry-After", "1")
	}
	lvl := slog.LevelInfo
	switch {
	case status >= 500 && status != http.StatusServiceUnavailable:
		lvl = slog.LevelError
	case status == http.StatusTooManyRequests:
		lvl = slog.LevelDebug
	}
	s.log.Log(r.Context(), lvl, "request refused", "kind", string(k), "room", roomID, "status", status, "err", err)
	problem(w, status, apierr.Text(err))
}

// patch handles trickle (204) and ICE restart (200) on a session.
func (s *Server) patch(w http.ResponseWriter, r *http.Request, k kind) {
	sess := s.lookup(k, r.PathValue("room"), r.PathValue("session"))
	if sess == nil {
		problem(w, http.StatusNotFound, "no such session (it may have ended)")
		return
	}
	if _, ok := s.owner(w, r, sess); !ok {
		return
	}
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); strings.TrimSpace(ct) != "application/trickle-ice-sdpfrag" {
		problem(w, http.StatusUnsupportedMediaType, "send Content-Type: application/trickle-ice-sdpfrag")
		return
	}
	ifMatch := strings.TrimSpace(r.Header.Get("If-Match"))
	if ifMatch == "" {
		problem(w, http.StatusPreconditionRequired, "If-Match with the session's ETag is required")
		return
	}
	body, status, err := s.readBody(w, r)
	if err != nil {
		problem(w, status, err.Error())
		return
	}
	frag, err := parseFrag(body)
	if err != nil {
		problem(w, http.StatusBadRequest, err.Error())
		return
	}
	sess.mu.Lock()
	etag := sess.etag
	sess.mu.Unlock()
	// RFC 9725 asks for If-Match: * (any entity); some clients quote it.
	if ifMatch == "*" || ifMatch == `"*"` {
		s.restart(w, r, sess, frag)
		return
	}
	if ifMatch != etag {
		problem(w, http.StatusPreconditionFailed, "If-Match does not match the session's ETag (ICE was restarted?)")
		return
	}
	for _, c := range frag.candidates {
		if err := s.svc.AddCandidate(sess.id, c); err != nil {
			if errors.Is(err, live.ErrTooManyCandidates) {
				problem(w, http.StatusTooManyRequests, apierr.Text(err))
				return
			}
			s.log.Info("trickled candidate refused", "session", live.Tag(sess.id), "err", err)
			problem(w, http.StatusBadRequest, apierr.Text(err))
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// restart performs an ICE restart and answers with the server's new
// credentials and candidates.
func (s *Server) restart(w http.ResponseWriter, r *http.Request, sess *session, frag sdpFrag) {
	if frag.ufrag == "" || frag.pwd == "" {
		problem(w, http.StatusBadRequest, "an ICE restart needs a=ice-ufrag and a=ice-pwd")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.OfferTimeout)
	defer cancel()
	local, err := s.svc.RestartICE(ctx, sess.id, frag.ufrag, frag.pwd)
	if err != nil {
		s.renderError(w, r, sess.kind, sess.roomID, err)
		return
	}
	for _, c := range frag.candidates {
		_ = s.svc.AddCandidate(sess.id, c)
	}
	sess.mu.Lock()
	sess.etag = etagOf(sess.id, local)
	etag := sess.etag
	sess.mu.Unlock()
	w.Header().Set("Content-Type", "application/trickle-ice-sdpfrag")
	w.Header().Set("ETag", etag)
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, localFrag(local))
}

// delete ends a session exactly as the WebSocket protocol would: WHIP ends
// the room (its viewers hear stopCommunication), WHEP leaves it.
func (s *Server) delete(w http.ResponseWriter, r *http.Request, k kind) {
	sess := s.lookup(k, r.PathValue("room"), r.PathValue("session"))
	if sess == nil {
		problem(w, http.StatusNotFound, "no such session (it may have ended)")
		return
	}
	if sess.relay != "" {
		s.deleteRelay(w, r, sess) // relay.go
		return
	}
	who, ok := s.owner(w, r, sess)
	if !ok {
		return
	}
	s.forget(sess)
	var err error
	if k == kindWHIP {
		err = s.svc.EndBroadcast(r.Context(), who)
	} else {
		err = s.svc.Leave(r.Context(), who)
	}
	if err != nil && !errors.Is(err, live.ErrNoRoom) && !errors.Is(err, live.ErrNoUser) {
		s.renderError(w, r, k, sess.roomID, err)
		return
	}
	s.log.Info("session deleted", "kind", string(k), "room", sess.roomID, "session", live.Tag(sess.id))
	w.WriteHeader(http.StatusOK)
}

// hasStreamKey checks the bearer token against the room's stream key.
func (s *Server) hasStreamKey(r *http.Request, roomID string) bool {
	want, ok := s.cfg.StreamKeys[roomID]
	if !ok {
		want = s.cfg.StreamKey
	}
	if want == "" {
		return true
	}
	got, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return found && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) == 1
}

func (s *Server) linkICEServers(w http.ResponseWriter, r *http.Request) {
	servers := s.cfg.ICEServers
	if s.cfg.TURN != nil {
		servers = append(append([]media.ICEServer{}, servers...), s.cfg.TURN(r)...)
	}
	for _, srv := range servers {
		for _, u := range srv.URLs {
			v := "<" + u + `>; rel="ice-server"`
			if srv.Username != "" {
				v += fmt.Sprintf(`; username=%q; credential=%q; credential-type="password"`, srv.Username, srv.Credential)
			}
			w.Header().Add("Link", v)
		}
	}
}

func isSDP(r *http.Request) bool {
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	return strings.EqualFold(strings.TrimSpace(ct), "application/sdp")
}

// readBody reads a body of at most MaxBodyBytes, or says which status
// refuses it: 413 when it is larger, 400 when empty or unreadable.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (string, int, error) {
	limit := s.cfg.MaxBodyBytes
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.rejected(RejectBodyTooLarge)
			return "", http.StatusRequestEntityTooLarge, fmt.Errorf("body larger than %d bytes", limit)
		}
		return "", http.StatusBadRequest, fmt.Errorf("cannot read body: %v", err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return "", http.StatusBadRequest, errors.New("empty body")
	}
	return string(b), http.StatusOK, nil
}

// problem writes a plain-text error, as WHIP clients (OBS, FFmpeg) show it.
func problem(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}

// etagOf names one ICE session of a resource: it changes on ICE restart.
func etagOf(id, localSDP string) string {
	h := sha256.Sum256([]byte(id + "\n" + iceUfrag(localSDP)))
	return `"` + hex.EncodeToString(h[:8]) + `"`
}
