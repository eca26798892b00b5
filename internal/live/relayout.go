package live

import (
	"context"

	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/media"
)

// relayOut is a node pulling a room from this one: a subscriber endpoint
// of the room's pipeline named relay:<node>, like a viewer's but not a
// viewer (not counted, no record), released when that node ends its pull
// (WHEP DELETE), when its media fails, or with the room.
type relayOut struct {
	node string
	ep   media.Endpoint
	sess Session
}

// Relay serves a node that pulls roomID from this one, with its offer, and
// returns the answer. who needs the relay grant (a token signed with the
// cluster secret).
func (s *Service) Relay(ctx context.Context, sess Session, who auth.Principal, node, roomID, offer string) (string, error) {
	if !who.Has(auth.GrantRelay) || node == "" {
		return "", s.forbidden(who, roomID, "pull as a relay")
	}
	r := s.room(roomID)
	if r == nil {
		return "", ErrRoomNotFound
	}
	r.mu.Lock()
	if r.ended || r.pipeline == nil {
		r.mu.Unlock()
		return "", ErrRoomNotFound
	}
	old := r.relays[node]
	var ep media.Endpoint
	ep, err := r.pipeline.NewEndpoint(media.Subscriber, "relay:"+node, media.Events{
		Failed: func(reason string) { s.dropRelay(r, node, ep, "media lost: "+reason) },
	})
	if err != nil {
		r.mu.Unlock()
		s.mediaError("cannot create a relay endpoint in room "+roomID, err)
		return "", ErrNoEndpoint.Wrap(err)
	}
	if r.relays == nil {
		r.relays = map[string]*relayOut{}
	}
	r.relays[node] = &relayOut{node: node, ep: ep, sess: sess}
	r.mu.Unlock()
	if old != nil {
		s.releaseRelays(map[string]*relayOut{node: old})
	}
	// A simulcast broadcast's relay carries every layer, so that the
	// pulling node's viewers choose one each; a pulling node that asks for
	// one video gets the top layer (the best the presenter sends). The link
	// between nodes is never estimated: it must not lower the layer of all
	// the viewers behind it.
	if lr, ok := ep.(media.LayerRelayer); ok {
		lr.RelayLayers()
	}
	answer, err := ep.ProcessOfferGathered(ctx, offer)
	if err != nil {
		s.dropRelay(r, node, ep, "offer failed")
		return "", offerError(err)
	}
	s.log.Info("relay serving", "room", roomID, "node", node, "endpoint", ep.ID())
	return answer, nil
}

// Unrelay ends the pull of roomID by node (its WHEP DELETE).
func (s *Service) Unrelay(roomID, node string) {
	if r := s.room(roomID); r != nil {
		s.dropRelay(r, node, nil, "released by the node")
	}
}

// dropRelay releases node's relay endpoint of room r, if it is still ep
// (any, with ep nil).
func (s *Service) dropRelay(r *room, node string, ep media.Endpoint, why string) {
	r.mu.Lock()
	out := r.relays[node]
	if out == nil || (ep != nil && out.ep != ep) {
		r.mu.Unlock()
		return
	}
	delete(r.relays, node)
	r.mu.Unlock()
	s.releaseRelays(map[string]*relayOut{node: out})
	s.log.Info("relay ended", "room", r.id, "node", node, "why", why)
}

// releaseRelays releases relay endpoints and retires their sessions.
func (s *Service) releaseRelays(relays map[string]*relayOut) {
	for _, out := range relays {
		out.ep.Release()
		if rel, ok := out.sess.(Releaser); ok {
			rel.Released()
		}
	}
}
