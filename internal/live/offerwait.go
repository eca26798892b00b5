package live

import (
	"context"
	"time"

	"github.com/onair-live/onair/internal/store"
)

// Seats that are never used. A broadcast or a seat made over REST holds a
// room (counted against Limits.MaxRooms) or a viewer's place and its
// endpoint until its client's offer arrives on the WebSocket. A client that
// never sends one would hold them for ever; so each member waits at most
// Options.OfferWait for its offer, and is then ended as if its client had
// dropped: webhooks hear room.finished or viewer.left with reason
// "dropped", and the counts are freed. A member's wait starts when it is
// made, stops when its offer is accepted, and starts again if that offer
// fails.

// awaitOffer arms m's wait for its offer. The caller holds r.mu.
func (s *Service) awaitOffer(r *room, m *member) {
	wait := s.opts.OfferWait
	if wait <= 0 {
		return
	}
	m.stopOfferWait()
	m.offerWait = time.AfterFunc(wait, func() { s.offerMissed(r, m) })
}

// stopOfferWait disarms m's wait. The caller holds its room's mu.
func (m *member) stopOfferWait() {
	if m.offerWait != nil {
		m.offerWait.Stop()
		m.offerWait = nil
	}
}

// offerMissed ends m, whose offer did not come in time, unless it came
// meanwhile or m is gone already.
func (s *Service) offerMissed(r *room, m *member) {
	r.mu.Lock()
	current := r.presenter == m
	if m.role == store.RoleViewer {
		current = r.viewers[m.email] == m
	}
	if r.ended || !current || m.offered || m.offerWait == nil {
		r.mu.Unlock()
		return
	}
	m.offerWait = nil
	// Claimed, under the lock: an offer arriving now is refused as a
	// second one rather than accepted into a room that is going.
	m.offered = true
	r.mu.Unlock()
	why := "no offer within " + s.opts.OfferWait.String()
	ctx := context.Background()
	s.log.Warn("reclaiming a seat whose offer never came", "room", r.id, "user", m.email,
		"role", string(m.role), "wait", s.opts.OfferWait)
	if m.role == store.RolePresenter {
		s.teardown(ctx, r, ReasonDropped, why, StopEnded)
		return
	}
	s.removeViewer(ctx, r, m.email, m.endpoint, ReasonDropped, why, 0)
}
