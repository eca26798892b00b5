package wsapi

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/onair-live/onair/internal/apierr"
	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/live"
)

// Access on the WebSocket. With tokens on, a connection is bound to its
// token's subject when it opens; without, to the user and room of its first
// accepted offer. Either way it then acts for that user and room only: a
// message for another is refused, so that one socket cannot act for
// anyone by naming them in its messages' email and roomId. Each
// connection's messages are rate-limited; a sustained flood closes it.

// Reasons of the refusals made here, for Config.OnRejected.
const (
	RejectUnauthorized    = "unauthorized"      // an upgrade without a valid token
	RejectSessionBound    = "session_bound"     // a message for another user or room than the connection's
	RejectMessageRate     = "message_rate"      // over MessagesPerSecond
	RejectMessageTooLarge = "message_too_large" // over MaxMessageBytes
	RejectBadMessage      = "bad_message"       // not JSON, unknown id, binary, no candidate
)

func (s *Server) rejected(reason string) {
	if s.cfg.OnRejected != nil {
		s.cfg.OnRejected(reason)
	}
}

// authenticate checks an upgrade's token, or answers 401 and false. In
// trusted-header mode it lets every upgrade through, with no principal.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (auth.Principal, bool) {
	if s.cfg.Auth.Open() {
		return auth.Principal{}, true
	}
	who, err := s.cfg.Auth.Authenticate(requestToken(r), "")
	if err != nil {
		s.rejected(RejectUnauthorized)
		s.log.Info("WebSocket refused: no valid token", "remote", r.RemoteAddr, "err", err)
		en, e := apierr.Lookup(live.ErrUnauthorized.With("%v", err))
		w.Header().Set("WWW-Authenticate", `Bearer realm="onair"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]any{"name": en.Name, "code": en.Code, "message": en.Message + " " + e.Detail})
		return auth.Principal{}, false
	}
	return who, true
}

// principal is who a message acts as: the connection's token subject, or
// in trusted-header mode the message's own email.
func (s *session) principal(email string) auth.Principal {
	if s.authed {
		return s.who
	}
	return auth.Trusted(email)
}

// boundTo refuses an offer for another user or room than the connection
// signals for (an empty one included), and says so in the log.
func (s *session) boundTo(email, roomID string) error {
	s.mu.Lock()
	user, room := s.user, s.room
	s.mu.Unlock()
	return s.refuseOther(user, room, email, roomID, user != "" && email != user, room != "" && roomID != room)
}

// candidateBound refuses a candidate for another room than the
// connection's; a candidate may leave its room out (it goes to the
// connection's own endpoint anyway).
func (s *session) candidateBound(roomID string) error {
	s.mu.Lock()
	user, room := s.user, s.room
	s.mu.Unlock()
	return s.refuseOther(user, room, "", roomID, false, room != "" && roomID != "" && roomID != room)
}

func (s *session) refuseOther(user, room, email, roomID string, otherUser, otherRoom bool) error {
	if !otherUser && !otherRoom {
		return nil
	}
	s.srv.rejected(RejectSessionBound)
	s.log.Warn("message for another user or room refused", "user", user, "room", room,
		"messageEmail", email, "messageRoom", roomID)
	if otherUser && s.authed {
		return live.ErrNotYou
	}
	return live.ErrSessionBound
}

// bind remembers the user and room the connection signals for, once an
// offer for them was accepted.
func (s *session) bind(email, roomID string) {
	s.mu.Lock()
	s.user, s.room = email, roomID
	s.mu.Unlock()
}

// newMessageLimits are a connection's message bucket, perSecond in bursts
// of twice as many (a browser trickles a dozen candidates at once), and its
// bucket of refusals, as large; nil for no limit.
func newMessageLimits(perSecond float64) (messages, refusals *rate.Limiter) {
	if perSecond <= 0 {
		return nil, nil
	}
	burst := max(1, int(2*perSecond))
	return rate.NewLimiter(rate.Limit(perSecond), burst), rate.NewLimiter(rate.Limit(perSecond), burst)
}

// admit takes one message from the connection's bucket. Over the limit the
// message is dropped, and the first of a run is answered with an error.
// Refusals have a bucket of their own: a client that keeps sending at well
// over the rate (beyond a burst's worth of refusals, net of the rate) is a
// flood, and the connection is closed with 1008 (policy violation); one
// slightly over the rate only loses messages. open is false when the
// connection must close.
func (s *session) admit() (ok, open bool) {
	if s.rate == nil || s.rate.Allow() {
		s.over = 0
		return true, true
	}
	s.srv.rejected(RejectMessageRate)
	s.over++
	if !s.refusals.Allow() {
		s.log.Warn("WebSocket flooding, closing", "limit", s.srv.cfg.MessagesPerSecond)
		s.closeAfterFlush(websocket.StatusPolicyViolation, "too many messages")
		return false, false
	}
	if s.over == 1 {
		s.sendError(fmt.Sprintf("too many messages: at most %g a second; this one was dropped", s.srv.cfg.MessagesPerSecond))
	}
	return false, true
}
