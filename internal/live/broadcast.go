package live

import (
	"context"
	"errors"
	"strings"

	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/media"
	"github.com/onair-live/onair/internal/store"
)

// StartRequest is what a presenter gives to go live.
type StartRequest struct {
	RoomID     string
	Title      string
	ProfileURL string
}

// StartBroadcast creates a room, its pipeline and the presenter's endpoint.
// who needs the publish grant on the room; it becomes the presenter.
func (s *Service) StartBroadcast(ctx context.Context, who auth.Principal, req StartRequest) (RoomInfo, error) {
	email := who.Subject
	if err := need(email, req.RoomID); err != nil {
		return RoomInfo{}, err
	}
	if err := s.mayPublish(who, req.RoomID); err != nil {
		return RoomInfo{}, err
	}
	if err := s.admit(); err != nil {
		return RoomInfo{}, err
	}
	if err := s.notInARoom(ctx, email); err != nil {
		return RoomInfo{}, err
	}
	if err := s.notLive(ctx, req.RoomID); err != nil {
		return RoomInfo{}, err
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return RoomInfo{}, ErrUnavailable.With("the server is shutting down")
	}
	if _, ok := s.rooms[req.RoomID]; ok {
		s.mu.Unlock()
		return RoomInfo{}, ErrAlreadyIn.With("room %s is already live", req.RoomID)
	}
	if err := s.roomsLeft(); err != nil {
		s.mu.Unlock()
		return RoomInfo{}, err
	}
	r := &room{id: req.RoomID, viewers: map[string]*member{}}
	r.mu.Lock()
	defer r.mu.Unlock()
	s.rooms[r.id] = r
	pl, err := s.engine.NewPipeline(req.RoomID)
	if err == nil {
		s.pending[pl.ID()] = true
	}
	s.mu.Unlock()

	fail := func(e error) (RoomInfo, error) {
		r.ended = true
		s.mu.Lock()
		delete(s.rooms, r.id)
		s.mu.Unlock()
		return RoomInfo{}, e
	}
	if err != nil {
		return fail(s.mediaFailure(ErrNoPipeline, err, "cannot create a pipeline for room "+r.id,
			"cannot create pipeline", "room", r.id))
	}
	defer s.markPending(pl.ID(), false)
	m := &member{email: email, roomID: r.id, role: store.RolePresenter}
	ep, err := s.newEndpoint(pl, media.Publisher, m, r)
	if err != nil {
		pl.Release()
		return fail(s.mediaFailure(ErrNoEndpoint, err, "cannot create the presenter's endpoint in room "+r.id,
			"cannot create presenter endpoint", "room", r.id))
	}
	defer s.markPending(ep.ID(), false)
	m.endpoint = ep
	rec := store.Room{ID: r.id, Title: req.Title, ProfileURL: req.ProfileURL, Presenter: email,
		PipelineID: pl.ID(), CreatedAt: pl.CreatedAt(), Owner: s.owner}
	if err := s.store.CreateRoom(ctx, rec, store.User{Email: email, RoomID: r.id,
		Role: store.RolePresenter, EndpointID: ep.ID()}); err != nil {
		pl.Release()
		if errors.Is(err, store.ErrExists) {
			return fail(ErrAlreadyIn.With("room %s or user %s exists", r.id, email))
		}
		return fail(s.storeErr(err))
	}
	r.pipeline, r.presenter = pl, m
	r.title, r.profile = req.Title, req.ProfileURL
	s.awaitOffer(r, m)
	s.emit(Event{Type: EventRoomStarted, RoomID: r.id, Title: req.Title, ProfileURL: req.ProfileURL, Presenter: email})
	s.log.Info("broadcast created", "room", r.id, "presenter", email, "pipeline", pl.ID(), "title", req.Title)
	return infoOf(rec), nil
}

// notInARoom refuses a user the store has in a room already.
func (s *Service) notInARoom(ctx context.Context, email string) error {
	if _, err := s.store.User(ctx, email); err == nil {
		return ErrAlreadyIn.With("%s is already in a room", email)
	} else if !isNotFound(err) {
		return s.storeErr(err)
	}
	return nil
}

// notLive refuses a room the store has live already.
func (s *Service) notLive(ctx context.Context, roomID string) error {
	if _, err := s.store.Room(ctx, roomID); err == nil {
		return ErrAlreadyIn.With("room %s is already live", roomID)
	} else if !isNotFound(err) {
		return s.storeErr(err)
	}
	return nil
}

// newEndpoint creates a member's endpoint, marked pending until recorded.
func (s *Service) newEndpoint(pl media.Pipeline, role media.Role, m *member, r *room) (media.Endpoint, error) {
	var ep media.Endpoint
	ev := media.Events{
		Candidate: func(c media.Candidate) {
			if sess := m.sess(); sess != nil {
				sess.SendCandidate(c)
			}
		},
		Failed: func(reason string) { s.mediaFailed(r, m, ep, reason) },
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ep, err := pl.NewEndpoint(role, string(m.role)+":"+m.email, ev)
	if err != nil {
		return nil, err
	}
	s.pending[ep.ID()] = true
	return ep, nil
}

// EndBroadcast ends the presenter's room: every viewer is told, every
// endpoint and the pipeline are released, the room is removed. It works
// even before the presenter has opened its WebSocket. Only
// the presenter ends a room: who's own, which needs the publish grant.
func (s *Service) EndBroadcast(ctx context.Context, who auth.Principal) error {
	email := who.Subject
	if err := need(email); err != nil {
		return err
	}
	if !who.Has(auth.GrantPublish) {
		return s.forbidden(who, "", "end a broadcast")
	}
	u, err := s.store.User(ctx, email)
	if isNotFound(err) || (err == nil && u.Role != store.RolePresenter) {
		return ErrNoRoom.With("%s is not presenting", email)
	} else if err != nil {
		return s.storeErr(err)
	}
	if err := s.mayPublish(who, u.RoomID); err != nil {
		return err
	}
	r := s.room(u.RoomID)
	if r == nil {
		// A record with no media in this process (ownership.go).
		return s.endElsewhere(ctx, u.RoomID)
	}
	s.teardown(ctx, r, ReasonEnded, "ended by presenter", StopEnded)
	return nil
}

// teardown ends a room: viewers are told why, media is released, the record
// removed. Safe to call more than once.
func (s *Service) teardown(ctx context.Context, r *room, reason, why string, viewerReason StopReason) {
	r.mu.Lock()
	if r.ended {
		r.mu.Unlock()
		return
	}
	r.ended = true
	s.tearing.Add(1) // with the claim, under r.mu: Shutdown cannot miss it
	defer s.tornDown()
	members := make([]*member, 0, len(r.viewers)+1)
	for _, v := range r.viewers {
		members = append(members, v)
	}
	presenter := r.presenter
	if presenter != nil {
		presenter.stopOfferWait()
	}
	for i, v := range members {
		v.stopOfferWait()
		s.emit(Event{Type: EventViewerLeft, RoomID: r.id, User: v.email, Reason: ReasonEnded,
			Viewers: len(members) - i - 1})
	}
	fin := Event{Type: EventRoomFinished, RoomID: r.id, Title: r.title, ProfileURL: r.profile, Reason: reason}
	if presenter != nil {
		fin.Presenter = presenter.email
	}
	if r.relay == nil { // a pulled room's end is its origin's to tell (cluster.go)
		s.emit(fin)
	}
	relays := r.relays
	r.relays = nil
	unpull := r.unpull() // cluster.go
	r.mu.Unlock()
	s.releaseRelays(relays) // relayout.go
	if unpull != nil {
		unpull()
	}

	s.mu.Lock()
	if s.rooms[r.id] == r {
		delete(s.rooms, r.id)
	}
	s.mu.Unlock()
	for _, v := range members {
		if sess := v.sess(); sess != nil {
			sess.Stop(viewerReason)
		}
		s.unbind(v)
	}
	if presenter != nil {
		if viewerReason == StopError {
			if sess := presenter.sess(); sess != nil {
				sess.Stop(StopError)
			}
		}
		s.unbind(presenter)
	}
	pipelineID := ""
	if r.pipeline != nil {
		pipelineID = r.pipeline.ID()
		r.pipeline.Release()
	}
	if presenter != nil {
		s.finishRecording(r, presenter.email)
	}
	if !r.noRecord {
		if _, err := s.store.DeleteRoom(context.WithoutCancel(ctx), r.id, pipelineID); err != nil && !isNotFound(err) {
			s.log.Error("cannot delete room record", "room", r.id, "err", err)
		}
	}
	s.log.Info("broadcast ended", "room", r.id, "reason", reason, "why", why, "viewers", len(members))
}

// tornDown counts a teardown done, and wakes Shutdown when none is left.
func (s *Service) tornDown() {
	if s.tearing.Add(-1) == 0 {
		select {
		case s.torn <- struct{}{}:
		default:
		}
	}
}

// Join adds a viewer to a room and creates its endpoint. who needs the
// view grant on the room.
func (s *Service) Join(ctx context.Context, who auth.Principal, roomID string) (RoomInfo, error) {
	email := who.Subject
	if err := need(email, roomID); err != nil {
		return RoomInfo{}, err
	}
	if err := s.mayView(who, roomID); err != nil {
		return RoomInfo{}, err
	}
	if err := s.notInARoom(ctx, email); err != nil {
		return RoomInfo{}, err
	}
	if s.clustered() {
		return s.joinSeat(ctx, who, roomID) // the endpoint is made where the offer lands
	}
	r := s.room(roomID)
	if r == nil {
		return RoomInfo{}, s.elsewhere(ctx, roomID)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended || r.pipeline == nil {
		return RoomInfo{}, ErrNoRoom.With("no live room %s", roomID)
	}
	if _, ok := r.viewers[email]; ok || r.presenter.email == email {
		return RoomInfo{}, ErrAlreadyIn.With("%s is already in room %s", email, roomID)
	}
	if err := s.seatsLeft(r); err != nil {
		return RoomInfo{}, err
	}
	m := &member{email: email, roomID: roomID, role: store.RoleViewer}
	ep, err := s.newEndpoint(r.pipeline, media.Subscriber, m, r)
	if err != nil {
		return RoomInfo{}, s.mediaFailure(ErrNoEndpoint, err, "cannot create a viewer's endpoint in room "+roomID,
			"cannot create viewer endpoint", "room", roomID, "viewer", email)
	}
	defer s.markPending(ep.ID(), false)
	m.endpoint = ep
	rec, err := s.store.AddViewer(ctx, roomID, store.User{Email: email, EndpointID: ep.ID()})
	if err != nil {
		ep.Release()
		switch {
		case errors.Is(err, store.ErrExists):
			return RoomInfo{}, ErrAlreadyIn.With("%s is already in a room", email)
		case isNotFound(err):
			return RoomInfo{}, ErrNoRoom.With("no live room %s", roomID)
		}
		return RoomInfo{}, s.storeErr(err)
	}
	r.viewers[email] = m
	s.awaitOffer(r, m)
	s.emit(Event{Type: EventViewerJoined, RoomID: roomID, User: email, Viewers: rec.Viewers})
	s.log.Info("viewer joined", "room", roomID, "viewer", email, "endpoint", ep.ID(), "count", rec.Viewers)
	return infoOf(rec), nil
}

// Leave removes a viewer from its room and releases its endpoint: who's
// own seat, which needs no grant.
func (s *Service) Leave(ctx context.Context, who auth.Principal) error {
	email := who.Subject
	if err := need(email); err != nil {
		return err
	}
	u, err := s.store.User(ctx, email)
	if isNotFound(err) || (err == nil && u.Role != store.RoleViewer) {
		return ErrNoUser.With("%s is not watching a room", email)
	} else if err != nil {
		return s.storeErr(err)
	}
	r := s.room(u.RoomID)
	if r == nil {
		if err := s.store.RemoveViewer(ctx, u.RoomID, email); err != nil && !isNotFound(err) {
			return s.storeErr(err)
		}
		return nil
	}
	if !s.removeViewer(ctx, r, email, nil, ReasonLeave, "left", 0) {
		if s.clustered() { // served by another node, which sees its seat go
			if err := s.store.RemoveViewer(ctx, u.RoomID, email); err != nil && !isNotFound(err) {
				return s.storeErr(err)
			}
			return nil
		}
		return ErrNoUser.With("%s is not watching room %s", email, u.RoomID)
	}
	return nil
}

// removeViewer takes a viewer out of a room. With ep set, only if that is
// still the viewer's endpoint. With notify, the viewer's session is told.
func (s *Service) removeViewer(ctx context.Context, r *room, email string, ep media.Endpoint, reason, why string, notify StopReason) bool {
	r.mu.Lock()
	m, ok := r.viewers[email]
	if !ok || r.ended || (ep != nil && m.endpoint != ep) {
		r.mu.Unlock()
		return false
	}
	delete(r.viewers, email)
	m.stopOfferWait()
	if err := s.store.RemoveViewer(context.WithoutCancel(ctx), r.id, email); err != nil && !isNotFound(err) {
		s.log.Error("cannot remove viewer record", "room", r.id, "viewer", email, "err", err)
	}
	count := len(r.viewers)
	s.emit(Event{Type: EventViewerLeft, RoomID: r.id, User: email, Reason: reason, Viewers: count})
	s.idle(r) // a pulled room with no viewer left is released after a grace
	r.mu.Unlock()
	if sess := m.sess(); sess != nil && notify != 0 {
		sess.Stop(notify)
	}
	s.unbind(m)
	m.endpoint.Release()
	s.log.Info("viewer left", "room", r.id, "viewer", email, "reason", reason, "why", why, "count", count)
	return true
}

// mediaFailed ends the session whose media connection died.
func (s *Service) mediaFailed(r *room, m *member, ep media.Endpoint, reason string) {
	ctx := context.Background()
	if m.role == store.RolePresenter {
		s.log.Warn("presenter media lost, ending broadcast", "room", r.id, "presenter", m.email, "reason", reason)
		// The presenter's socket may still be open: tell it the broadcast
		// was torn down by an error (its viewers hear that it stopped).
		if sess := m.sess(); sess != nil {
			sess.Stop(StopError)
		}
		s.teardown(ctx, r, ReasonDropped, "presenter media lost: "+reason, StopEnded)
		return
	}
	s.removeViewer(ctx, r, m.email, ep, ReasonDropped, "media lost: "+reason, StopError)
}

// need refuses a request that does not name its user, or one of the rooms
// it must name. The transports check their own fields first, and say which
// are missing in their protocol's words.
func need(user string, rooms ...string) error {
	if strings.TrimSpace(user) == "" {
		return ErrBadRequest.With("no user given")
	}
	for _, r := range rooms {
		if strings.TrimSpace(r) == "" {
			return ErrBadRequest.With("no room given")
		}
	}
	return nil
}
