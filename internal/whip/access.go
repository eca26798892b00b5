package whip

import (
	"net/http"

	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/randid"
)

// Access on WHIP and WHEP. With tokens on, every request but a preflight
// carries one as Authorization: Bearer (or ?token= for players that cannot
// set headers): the POST's token names the publisher or viewer (its
// subject) and the domain checks its grant; PATCH and DELETE need a token
// of the same subject. Without tokens (trusted mode), publishing needs the
// room's stream key if one is configured, and a session's URL, which is
// unguessable, is what PATCH and DELETE need (WHIP DELETE: the key too).

// Reasons of the refusals made here, for Config.OnRejected.
const (
	RejectUnauthorized = "unauthorized"   // no valid token or stream key
	RejectForbidden    = "forbidden"      // a token of another subject than the session's
	RejectBodyTooLarge = "body_too_large" // a body over MaxBodyBytes
)

func (s *Server) rejected(reason string) {
	if s.cfg.OnRejected != nil {
		s.cfg.OnRejected(reason)
	}
}

func (s *Server) unauthorized(w http.ResponseWriter, msg string) {
	s.rejected(RejectUnauthorized)
	w.Header().Set("WWW-Authenticate", `Bearer realm="onair"`)
	problem(w, http.StatusUnauthorized, msg)
}

func token(r *http.Request) string {
	return auth.TokenFrom(r.Header.Get("Authorization"), r.URL.Query().Get("token"))
}

// authenticate says who a POST to /whip/{room} or /whep/{room} is from, or
// answers 401 and false.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, k kind, roomID string) (auth.Principal, bool) {
	if !s.cfg.Auth.Open() {
		who, err := s.cfg.Auth.Authenticate(token(r), "")
		if err != nil {
			s.log.Info("request refused: no valid token", "kind", string(k), "room", roomID, "remote", r.RemoteAddr, "err", err)
			s.unauthorized(w, "a valid token is required: Authorization: Bearer <token> ("+err.Error()+")")
			return auth.Principal{}, false
		}
		return who, true
	}
	if k == kindWHIP && !s.hasStreamKey(r, roomID) {
		s.unauthorized(w, "a valid stream key is required: Authorization: Bearer <key>")
		return auth.Principal{}, false
	}
	email := r.URL.Query().Get("email")
	if email == "" {
		// Not derived from the session id: this identity goes out in
		// webhooks, logs and endpoint names, and must not shorten the
		// session URL's 128 random bits for whoever reads them.
		email = string(k) + ":" + randid.Hex(6)
	}
	return auth.Trusted(email), true
}

// owner checks that a PATCH or DELETE comes from the session's owner and
// returns who it acts as, or answers 401 or 403 and false.
func (s *Server) owner(w http.ResponseWriter, r *http.Request, sess *session) (auth.Principal, bool) {
	if s.cfg.Auth.Open() {
		if sess.kind == kindWHIP && r.Method == http.MethodDelete && !s.hasStreamKey(r, sess.roomID) {
			s.unauthorized(w, "a valid stream key is required: Authorization: Bearer <key>")
			return auth.Principal{}, false
		}
		return sess.who, true
	}
	who, err := s.cfg.Auth.Authenticate(token(r), "")
	if err != nil {
		s.unauthorized(w, "a valid token is required: Authorization: Bearer <token> ("+err.Error()+")")
		return auth.Principal{}, false
	}
	if who.Subject != sess.who.Subject {
		s.rejected(RejectForbidden)
		s.log.Warn("request for another user's session refused", "session", live.Tag(sess.id), "user", who.Subject,
			"owner", sess.who.Subject)
		problem(w, http.StatusForbidden, "this session belongs to another user")
		return auth.Principal{}, false
	}
	return who, true
}
