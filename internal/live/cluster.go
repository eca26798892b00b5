package live

import (
	"context"
	"errors"
	"time"

	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/media"
	"github.com/onair-live/onair/internal/store"
)

// Several nodes, one broadcast. With Options.Cluster set, this process is
// one node of several that share one store and serve every room together
// (docs/scaling.md):
//
//   - The node where a room's presenter media arrives holds the room's
//     record (its Owner): its origin.
//   - A join records the viewer's seat in the store, wherever it lands; the
//     viewer's endpoint is made by the node its offer reaches, which records
//     itself as the viewer's Node. A node that gets an offer for a room it
//     does not hold pulls the room (Cluster.Pull: a WHEP client of the node
//     placement chooses) into a pipeline of its own, whose publisher is that
//     pull: a "pulled" room. Its viewers are served like any others.
//   - A pulled room has no record of its own: it ends when the record of
//     the room it pulls ends (its pull fails and the record is gone, or Sync
//     finds it gone), and is released when its last viewer has been gone for
//     Options.RelayGrace.
//   - A node pulling from this one is served by a subscriber endpoint named
//     relay:<node> (relayout.go), not counted as a viewer.

// Cluster is what the domain needs of the other nodes (internal/cluster
// implements it).
type Cluster interface {
	// Pull delivers this node's offer to pull roomID to the node that
	// placement chooses, and returns its answer and a function that ends
	// that pull there (and in the placement record). It must not block
	// longer than ctx.
	Pull(ctx context.Context, roomID, offer string) (answer string, release func(), err error)
}

// DefaultRelayGrace is how long a pulled room outlives its last viewer.
const DefaultRelayGrace = 10 * time.Second

// pulled is the state of a room this node pulls from another (guarded by
// the room's mutex).
type pulled struct {
	upstream string // the pipeline id of the room's record, at the origin
	source   media.Endpoint
	release  func() // ends the current pull at the node pulled from
	idle     *time.Timer
	again    bool // pulling again after a failure
}

// clustered reports whether this process is one node of several.
func (s *Service) clustered() bool { return s.opts.Cluster != nil }

// ErrNodeBusy: this node takes no new viewers now (it is draining, or over
// its limit); another node may.
var ErrNodeBusy = errors.New("this node takes no new viewers now; another node may")

// admitViewer asks Options.AdmitViewer whether this node takes a new viewer.
func (s *Service) admitViewer() error {
	if s.opts.AdmitViewer == nil {
		return nil
	}
	if err := s.opts.AdmitViewer(); err != nil {
		s.log.Info("viewer sent elsewhere", "why", err)
		return ErrUnavailable.With("%v: %v", ErrNodeBusy, err).Wrap(ErrNodeBusy)
	}
	return nil
}

// joinSeat records a viewer's seat (cluster): its endpoint is made where its
// offer lands (adopt).
func (s *Service) joinSeat(ctx context.Context, who auth.Principal, roomID string) (RoomInfo, error) {
	email := who.Subject
	if err := s.admitViewer(); err != nil {
		return RoomInfo{}, err
	}
	if r := s.room(roomID); r != nil {
		r.mu.Lock()
		presenter := r.presenter
		r.mu.Unlock()
		if presenter != nil && presenter.email == email {
			return RoomInfo{}, ErrAlreadyIn.With("%s is already in room %s", email, roomID)
		}
	}
	rec, err := s.store.AddViewer(ctx, roomID, store.User{Email: email, Node: s.owner})
	switch {
	case errors.Is(err, store.ErrExists):
		return RoomInfo{}, ErrAlreadyIn.With("%s is already in a room", email)
	case isNotFound(err):
		return RoomInfo{}, ErrNoRoom.With("no live room %s", roomID)
	case err != nil:
		return RoomInfo{}, s.storeErr(err)
	}
	s.emit(Event{Type: EventViewerJoined, RoomID: roomID, User: email, Viewers: rec.Viewers})
	s.log.Info("viewer joined", "room", roomID, "viewer", email, "count", rec.Viewers)
	return infoOf(rec), nil
}

// adopt makes this node serve a viewer whose seat is recorded and whose
// offer arrived here: the room is pulled if this node does not hold it,
// and the viewer gets an endpoint in it.
func (s *Service) adopt(ctx context.Context, o Offer) (*room, error) {
	u, err := s.store.User(ctx, o.Email)
	switch {
	case isNotFound(err) || (err == nil && (u.Role != store.RoleViewer || u.RoomID != o.RoomID)):
		return nil, ErrNotViewer
	case err != nil:
		return nil, s.storeErr(err)
	}
	if r := s.room(o.RoomID); r == nil || !r.hasViewer(o.Email) {
		if err := s.admitViewer(); err != nil {
			return nil, err
		}
	}
	r, err := s.roomToServe(ctx, o.RoomID)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended || r.pipeline == nil {
		return nil, ErrRoomNotFound
	}
	if _, ok := r.viewers[o.Email]; ok {
		return r, nil
	}
	if err := s.seatsLeft(r); err != nil {
		return nil, err
	}
	m := &member{email: o.Email, roomID: r.id, role: store.RoleViewer}
	ep, err := s.newEndpoint(r.pipeline, media.Subscriber, m, r)
	if err != nil {
		s.mediaError("cannot create a viewer's endpoint in room "+r.id, err)
		return nil, ErrNoEndpoint.Wrap(err)
	}
	defer s.markPending(ep.ID(), false)
	m.endpoint = ep
	if err := s.store.MoveViewer(ctx, r.id, o.Email, s.owner, ep.ID()); err != nil {
		ep.Release()
		if isNotFound(err) {
			return nil, ErrNotViewer
		}
		return nil, s.storeErr(err)
	}
	r.viewers[o.Email] = m
	s.keep(r)
	s.log.Info("viewer served here", "room", r.id, "viewer", o.Email, "endpoint", ep.ID(), "pulled", r.relay != nil)
	return r, nil
}

// roomToServe returns the room this node serves roomID from: one it holds,
// or one it starts pulling now.
func (s *Service) roomToServe(ctx context.Context, roomID string) (*room, error) {
	if r := s.room(roomID); r != nil {
		return r, nil
	}
	rec, err := s.store.Room(ctx, roomID)
	switch {
	case isNotFound(err):
		return nil, ErrRoomNotFound
	case err != nil:
		return nil, s.storeErr(err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrUnavailable.With("the server is shutting down")
	}
	if r := s.rooms[roomID]; r != nil {
		s.mu.Unlock()
		return r, nil
	}
	r := &room{id: roomID, title: rec.Title, profile: rec.ProfileURL, viewers: map[string]*member{},
		noRecord: true, relay: &pulled{upstream: rec.PipelineID}}
	r.mu.Lock()
	defer r.mu.Unlock()
	s.rooms[roomID] = r
	pl, err := s.engine.NewPipeline(roomID)
	if err == nil {
		s.pending[pl.ID()] = true
	}
	s.mu.Unlock()
	fail := func(e error) (*room, error) {
		r.ended = true
		s.mu.Lock()
		delete(s.rooms, roomID)
		delete(s.pending, r.pipelineID())
		s.mu.Unlock()
		if r.pipeline != nil {
			r.pipeline.Release()
		}
		return nil, e
	}
	if err != nil {
		s.mediaError("cannot create a pipeline to pull room "+roomID, err)
		return fail(ErrNoPipeline.Wrap(err))
	}
	r.pipeline = pl
	m := &member{email: rec.Presenter, roomID: roomID, role: store.RolePresenter}
	src, err := pl.NewEndpoint(media.Publisher, "pull:"+roomID, media.Events{
		Failed: func(reason string) { s.pullFailed(r, reason) },
	})
	if err != nil {
		return fail(ErrNoEndpoint.Wrap(err))
	}
	m.endpoint, r.presenter, r.relay.source = src, m, src
	if err := s.pull(ctx, r); err != nil {
		s.log.Warn("cannot pull room", "room", roomID, "err", err)
		return fail(ErrUnavailable.With("room %s cannot be relayed to this node now; try again", roomID).Wrap(err))
	}
	s.markPending(pl.ID(), false) // exempt from the reaper as a pulled room's
	s.log.Info("pulling room", "room", roomID, "origin", rec.Owner, "pipeline", pl.ID())
	return r, nil
}

// hasViewer reports whether the room has that viewer.
func (r *room) hasViewer(email string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.viewers[email]
	return ok
}

// pipelineID is the room's pipeline's id, or "".
func (r *room) pipelineID() string {
	if r.pipeline == nil {
		return ""
	}
	return r.pipeline.ID()
}

// pull connects the room's source to the node placement chooses. The
// caller holds r.mu or owns r alone.
func (s *Service) pull(ctx context.Context, r *room) error {
	puller, ok := r.relay.source.(media.Puller)
	if !ok {
		return errors.New("the media engine cannot pull")
	}
	var release func()
	err := puller.Pull(ctx, func(ctx context.Context, offer string) (string, error) {
		answer, rel, err := s.opts.Cluster.Pull(ctx, r.id, offer)
		release = rel
		return answer, err
	})
	if err != nil {
		if release != nil {
			s.bg.Go(release)
		}
		return err
	}
	if old := r.relay.release; old != nil {
		s.bg.Go(old)
	}
	r.relay.release = release
	return nil
}

// pullFailed pulls a room again after its source failed (the node pulled
// from went away), for as long as the room's record lives; the room ends
// for its viewers when the record is gone or its origin is dead.
func (s *Service) pullFailed(r *room, reason string) {
	r.mu.Lock()
	if r.ended || r.relay.again {
		r.mu.Unlock()
		return
	}
	r.relay.again = true
	r.mu.Unlock()
	s.log.Warn("relay source lost, pulling again", "room", r.id, "reason", reason)
	ctx := context.Background()
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			time.Sleep(300 * time.Millisecond)
		}
		if live, why := s.upstreamLive(ctx, r); !live {
			s.endPulled(ctx, r, ReasonEnded, why, StopEnded)
			return
		}
		r.mu.Lock()
		if r.ended {
			r.mu.Unlock()
			return
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.pull(pctx, r)
		cancel()
		if err == nil {
			r.relay.again = false
			r.mu.Unlock()
			s.log.Info("pulling room again", "room", r.id, "attempts", attempt+1)
			return
		}
		r.mu.Unlock()
		s.log.Debug("pull again failed", "room", r.id, "err", err)
	}
}

// upstreamLive reports whether the record a pulled room relays is still
// live, or why not. A store that cannot be reached counts as live: the
// broadcast goes on while it is away.
func (s *Service) upstreamLive(ctx context.Context, r *room) (bool, string) {
	rec, err := s.store.Room(ctx, r.id)
	switch {
	case isNotFound(err):
		return false, "the room ended at its origin"
	case err != nil:
		return true, ""
	case rec.PipelineID != r.relay.upstream:
		return false, "the room was started again elsewhere"
	}
	if alive, err := s.store.OwnerAlive(ctx, rec.Owner); err == nil && !alive {
		return false, "the room's origin vanished"
	}
	return true, ""
}

// endPulled ends a pulled room: its viewers are told why (ended: the room
// ended at its origin; none: the pull was released for want of viewers).
func (s *Service) endPulled(ctx context.Context, r *room, reason, why string, viewers StopReason) {
	s.teardown(ctx, r, reason, why, viewers)
}

// unpull stops a pulled room's idle timer and returns the function that
// ends its pull at the node pulled from (nil if none). The caller holds
// r.mu.
func (r *room) unpull() func() {
	if r.relay == nil {
		return nil
	}
	if r.relay.idle != nil {
		r.relay.idle.Stop()
		r.relay.idle = nil
	}
	release := r.relay.release
	r.relay.release = nil
	return release
}

// keep cancels a pulled room's idle release: it has a viewer. The caller
// holds r.mu.
func (s *Service) keep(r *room) {
	if r.relay != nil && r.relay.idle != nil {
		r.relay.idle.Stop()
		r.relay.idle = nil
	}
}

// idle starts a pulled room's release once its last viewer left. The caller
// holds r.mu.
func (s *Service) idle(r *room) {
	if r.relay == nil || len(r.viewers) > 0 || r.ended || r.relay.idle != nil {
		return
	}
	grace := s.opts.RelayGrace
	if grace <= 0 {
		grace = DefaultRelayGrace
	}
	r.relay.idle = time.AfterFunc(grace, func() {
		r.mu.Lock()
		empty := len(r.viewers) == 0 && !r.ended
		r.mu.Unlock()
		if empty {
			s.endPulled(context.Background(), r, ReasonLeave, "no viewers left on this node", StopEnded)
		}
	})
}

// dropSeat removes a viewer's seat whose offer failed before it had an
// endpoint here.
func (s *Service) dropSeat(ctx context.Context, roomID, email string) {
	if err := s.store.RemoveViewer(context.WithoutCancel(ctx), roomID, email); err != nil && !isNotFound(err) {
		s.log.Warn("cannot remove a seat", "room", roomID, "viewer", email, "err", err)
	}
}

// syncPulled ends the pulled rooms whose record is gone, and drops the
// local viewers whose seat was left or moved to another node. The caller
// holds own.mu.
func (s *Service) syncPulled(ctx context.Context) {
	for _, r := range s.roomList() {
		r.mu.Lock()
		relay, ended := r.relay, r.ended
		local := len(r.viewers)
		r.mu.Unlock()
		if ended {
			continue
		}
		if relay != nil {
			if live, why := s.upstreamLive(ctx, r); !live {
				s.bg.Go(func() { s.endPulled(context.Background(), r, ReasonEnded, why, StopEnded) })
				continue
			}
		}
		if local == 0 {
			continue
		}
		// Each of this node's viewers is looked up (not the room's whole
		// viewer set, which may hold every viewer of every node).
		r.mu.Lock()
		mine := make([]*member, 0, len(r.viewers))
		for _, m := range r.viewers {
			if m.offered {
				mine = append(mine, m)
			}
		}
		r.mu.Unlock()
		for _, m := range mine {
			u, err := s.store.User(ctx, m.email)
			if err != nil && !isNotFound(err) {
				return // the store is away: nothing is known
			}
			here := err == nil && u.RoomID == r.id && u.Role == store.RoleViewer &&
				(u.Node == s.owner || (u.Node == "" && relay == nil))
			if !here {
				s.removeLocal(ctx, r, m)
			}
		}
	}
}

// removeLocal drops a viewer this node served whose seat was left (or
// moved) elsewhere: the record is not this node's to change.
func (s *Service) removeLocal(ctx context.Context, r *room, m *member) {
	r.mu.Lock()
	if r.viewers[m.email] != m || r.ended {
		r.mu.Unlock()
		return
	}
	delete(r.viewers, m.email)
	s.idle(r)
	r.mu.Unlock()
	if sess := m.sess(); sess != nil {
		sess.Stop(StopEnded)
	}
	s.unbind(m)
	m.endpoint.Release()
	s.log.Info("viewer left through another node", "room", r.id, "viewer", m.email)
}

// exempt adds the media ids the reaper must leave alone in a cluster:
// pulled rooms' pipelines and endpoints, and relay endpoints, which have
// no records of their own.
func (s *Service) exempt(ids map[string]bool) {
	for _, r := range s.roomList() {
		r.mu.Lock()
		if r.relay != nil && r.pipeline != nil {
			ids[r.pipeline.ID()] = true
			for _, ep := range r.pipeline.Endpoints() {
				ids[ep.ID()] = true
			}
		}
		for _, out := range r.relays {
			ids[out.ep.ID()] = true
		}
		r.mu.Unlock()
	}
}

// Load is what this node serves, for the cluster's registry.
type Load struct {
	Viewers, Rooms, Relays int
}

// Load counts this node's viewers, rooms (held or pulled) and the relays it
// serves to other nodes.
func (s *Service) Load() Load {
	var l Load
	for _, r := range s.roomList() {
		r.mu.Lock()
		if !r.ended {
			l.Rooms++
			l.Viewers += len(r.viewers)
			l.Relays += len(r.relays)
		}
		r.mu.Unlock()
	}
	return l
}
