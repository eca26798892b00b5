package whip

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/randid"
)

// Relays is what a relay pull needs of the domain: another onair node pulls
// a room from this one as a WHEP client (POST /whep/{room}?relay={node},
// with a token signed with the cluster secret that has the relay grant).
// Its endpoint is named relay:{node} and it is not a viewer.
type Relays interface {
	Relay(ctx context.Context, sess live.Session, who auth.Principal, node, roomID, offer string) (string, error)
	Unrelay(roomID, node string)
}

// createRelay handles a relay's POST /whep/{room}?relay={node}.
func (s *Server) createRelay(w http.ResponseWriter, r *http.Request, k kind, roomID, node string) {
	relays, ok := s.svc.(Relays)
	if k != kindWHEP || s.cfg.RelayAuth == nil || !ok {
		s.rejected(RejectForbidden)
		problem(w, http.StatusForbidden, "this server takes no relay pulls")
		return
	}
	who, ok := s.relayAuth(w, r, node)
	if !ok {
		return
	}
	offer, status, err := s.readBody(w, r)
	if err != nil {
		problem(w, status, err.Error())
		return
	}
	sess := &session{srv: s, id: randid.New(), kind: k, roomID: roomID, who: who, relay: node}
	s.mu.Lock()
	s.sessions[sess.id] = sess
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.OfferTimeout)
	defer cancel()
	answer, err := relays.Relay(ctx, sess, who, node, roomID, offer)
	if err != nil {
		s.forget(sess)
		s.renderError(w, r, k, roomID, err)
		return
	}
	s.log.Info("relay session created", "room", roomID, "node", node, "remote", r.RemoteAddr)
	s.created(w, r, sess, answer)
}

// relayAuth checks a relay's token: the cluster secret's, with the relay
// grant, naming the node that pulls. A viewer's token is refused (403).
func (s *Server) relayAuth(w http.ResponseWriter, r *http.Request, node string) (auth.Principal, bool) {
	who, err := s.cfg.RelayAuth(token(r))
	if err != nil || who.Subject != node {
		s.rejected(RejectForbidden)
		s.log.Info("relay pull refused", "node", node, "remote", r.RemoteAddr, "err", err)
		problem(w, http.StatusForbidden, "a relay pull needs a token signed with the cluster secret, with the relay grant, for this node")
		return auth.Principal{}, false
	}
	return who, true
}

// deleteRelay handles a relay's DELETE: the node ends its pull.
func (s *Server) deleteRelay(w http.ResponseWriter, r *http.Request, sess *session) {
	if _, ok := s.relayAuth(w, r, sess.relay); !ok {
		return
	}
	s.forget(sess)
	if relays, ok := s.svc.(Relays); ok {
		relays.Unrelay(sess.roomID, sess.relay)
	}
	w.WriteHeader(http.StatusOK)
}

// redirect answers a WHEP POST this node is too busy for (draining, full)
// with 307 to the same request at another node, if there is one.
func (s *Server) redirect(w http.ResponseWriter, r *http.Request, k kind, roomID string) bool {
	if k != kindWHEP || s.cfg.OtherNode == nil {
		return false
	}
	base, ok := s.cfg.OtherNode(r.Context())
	if !ok {
		return false
	}
	u := strings.TrimRight(base, "/") + "/whep/" + url.PathEscape(roomID)
	if q := r.URL.RawQuery; q != "" {
		u += "?" + q
	}
	s.log.Info("viewer redirected to another node", "room", roomID, "to", base)
	w.Header().Set("Location", u)
	problem(w, http.StatusTemporaryRedirect, "this node takes no new viewers now; watch at "+u)
	return true
}
