package wsapi

import (
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/onair-live/onair/internal/apierr"
	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/live"
)

// Tokens that expire while in use. With tokens on, a connection's token
// is checked at the upgrade and again at each offer, and the connection is
// closed when the token expires (1008, after an error message saying so),
// unless the client has sent a fresh one first:
//
//	{"id":"token","token":"<a fresh token of the same subject>"}
//
// answered {"id":"tokenResponse","response":"accepted"}, or "rejected"
// with a message (the old token then still holds until it expires).

// RejectTokenExpired: a connection closed because its token expired.
const RejectTokenExpired = "token_expired"

// requestToken is the token a request carries (Authorization: Bearer, or
// the token query parameter, which browsers must use on a WebSocket).
func requestToken(r *http.Request) string {
	return auth.TokenFrom(r.Header.Get("Authorization"), r.URL.Query().Get("token"))
}

// armExpiry closes the connection when its token stops being accepted.
// The caller holds s.mu.
func (s *session) armExpiry() {
	if !s.authed || s.who.ValidUntil.IsZero() {
		return
	}
	if s.expiry != nil {
		s.expiry.Stop()
	}
	s.expiry = time.AfterFunc(time.Until(s.who.ValidUntil), s.tokenExpired)
}

func (s *session) tokenExpired() {
	s.mu.Lock()
	over, until := s.lifeOver, s.who.ValidUntil
	s.mu.Unlock()
	if over || time.Now().Before(until) { // finished, or refreshed meanwhile
		return
	}
	s.srv.rejected(RejectTokenExpired)
	s.log.Info("WebSocket token expired, closing", "expired", until.UTC().Format(time.RFC3339))
	s.sendError("token expired: send {\"id\":\"token\",\"token\":...} with a fresh one before it does")
	s.closeAfterFlush(websocket.StatusPolicyViolation, "token expired")
}

// refreshToken handles a token message: a valid token of the connection's
// subject replaces its token (and its grants, for the offers to come).
func (s *session) refreshToken(tok string) {
	reply := func(err error) {
		m := responseMsg{ID: idTokenResponse, Response: "accepted"}
		if err != nil {
			m.Response, m.Message = "rejected", apierr.Text(err)
		}
		s.send(mustJSON(m))
	}
	if !s.authed {
		reply(live.ErrBadRequest.With("this server does not use tokens"))
		return
	}
	who, err := s.srv.cfg.Auth.Authenticate(tok, "")
	if err != nil {
		s.srv.rejected(RejectUnauthorized)
		s.log.Info("token refresh refused", "err", err)
		reply(live.ErrUnauthorized.With("%v", err))
		return
	}
	if who.Subject != s.who.Subject {
		s.srv.rejected(RejectSessionBound)
		s.log.Warn("token refresh for another user refused", "tokenUser", who.Subject)
		reply(live.ErrNotYou)
		return
	}
	s.mu.Lock()
	s.who, s.token = who, tok
	if !s.lifeOver {
		s.armExpiry()
	}
	s.mu.Unlock()
	s.log.Debug("token refreshed", "validUntil", who.ValidUntil.UTC().Format(time.RFC3339))
	reply(nil)
}

// recheckToken verifies the connection's token again before an offer: an
// expired one refuses the offer.
func (s *session) recheckToken() error {
	if !s.authed {
		return nil
	}
	s.mu.Lock()
	tok := s.token
	s.mu.Unlock()
	if _, err := s.srv.cfg.Auth.Authenticate(tok, ""); err != nil {
		s.srv.rejected(RejectUnauthorized)
		return live.ErrUnauthorized.With("%v: send a fresh token in a token message", err)
	}
	return nil
}
