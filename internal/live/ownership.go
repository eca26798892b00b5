package live

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/onair-live/onair/internal/randid"
	"github.com/onair-live/onair/internal/store"
)

// Ownership. Several onair processes may share one store (Redis). Each owns
// the rooms whose media it holds, records itself as their Owner, and proves
// it is alive with a heartbeat: a store key with a TTL of Options.OwnerTTL,
// renewed every third of it. A room whose owner's heartbeat has expired has
// lost its media (its process died), and whichever process sees it first
// ends it through teardown, as if its presenter had dropped: the records are
// removed and room.finished (reason reclaimed) is emitted, for webhooks and
// recording hooks. The store's conditional delete makes that happen once.
//
// The same pass (Sync) repairs this process's own records, which a store
// that was away may have left wrong: it restores the records of rooms it
// holds when the store lost them (a Redis that restarted empty: the
// heartbeat was not renewed but expired or vanished), removes records of
// rooms it no longer holds (ended while the store was away), and removes
// viewer records its rooms no longer have.

// DefaultOwnerTTL is how long a process's rooms outlive its last heartbeat.
const DefaultOwnerTTL = 15 * time.Second

// NewOwnerID returns an id for one run of this process: host, pid and
// random bits, so that a restarted process is a new owner.
func NewOwnerID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "onair"
	}
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randid.Hex(4))
}

// ownership is the state of Sync, guarded by its mutex (held across a whole
// Sync, and by Orphans while it compares the store with the media engine).
type ownership struct {
	mu sync.Mutex
	// registered: a heartbeat was recorded once, so that one that was not
	// renewed since means the store lost it.
	registered bool
	// down: the store failed at the last attempt.
	down bool
	// backAt: when the store came back after being away. Rooms of other
	// processes are left alone for one OwnerTTL after it, so that their
	// owners have time to renew heartbeats that expired while it was away.
	backAt time.Time
	// checkViewers: compare every room's viewers at the next Sync, not
	// only those whose count differs (set when the store comes back).
	checkViewers bool
}

// Owner is this process's owner id in the store.
func (s *Service) Owner() string { return s.owner }

// Run does the service's background work until ctx ends, in the calling
// goroutine: Sync at once and then every OwnerTTL/3, and the reaper every
// ReapInterval (as RunReaper).
func (s *Service) Run(ctx context.Context) {
	syncs := time.NewTicker(s.opts.OwnerTTL / 3)
	defer syncs.Stop()
	var reaps <-chan time.Time
	if s.opts.ReapInterval > 0 {
		t := time.NewTicker(s.opts.ReapInterval)
		defer t.Stop()
		reaps = t.C
	}
	syncNow := func() {
		if _, err := s.Sync(ctx); err != nil && ctx.Err() == nil {
			s.log.Debug("store sync failed", "err", err)
		}
	}
	syncNow()
	for {
		select {
		case <-ctx.Done():
			return
		case <-syncs.C:
			syncNow()
		case <-reaps:
			s.reap(ctx)
		}
	}
}

// Sync renews this process's heartbeat and reconciles the store with the
// media it holds (see above). It returns how many rooms of vanished
// processes it ended.
func (s *Service) Sync(ctx context.Context) (int, error) {
	s.own.mu.Lock()
	defer s.own.mu.Unlock()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return 0, nil
	}
	if err := s.claim(ctx); err != nil {
		return 0, err
	}
	n, err := s.reconcile(ctx)
	s.storeUp(err)
	if err == nil && s.clustered() {
		s.syncPulled(ctx) // cluster.go
	}
	return n, err
}

// storeUp notes whether the store answered, and logs when that changes.
// The caller holds own.mu.
func (s *Service) storeUp(err error) {
	switch {
	case err != nil && !s.own.down:
		s.own.down = true
		s.log.Error("store unreachable: new requests get 503 until it is back; live broadcasts go on", "err", err)
	case err == nil && s.own.down:
		s.own.down = false
		s.own.backAt = time.Now()
		s.own.checkViewers = true
		s.log.Warn("store reachable again", "owner", s.owner)
	}
}

// claim renews the heartbeat; when the store had lost it, it restores the
// records of every room this process holds. The caller holds own.mu.
func (s *Service) claim(ctx context.Context) error {
	renewed, err := s.store.Heartbeat(ctx, s.owner, s.opts.OwnerTTL)
	if err != nil {
		s.storeUp(err)
		return err
	}
	s.storeUp(nil)
	if renewed {
		return nil
	}
	rooms := s.roomList()
	if !s.own.registered || len(rooms) == 0 {
		s.own.registered = true
		s.log.Info("heartbeat registered in the store", "owner", s.owner, "ttl", s.opts.OwnerTTL)
		return nil
	}
	s.log.Warn("the store had lost this process's heartbeat: restoring the records of its rooms",
		"owner", s.owner, "rooms", len(rooms))
	for _, r := range rooms {
		if err := s.restore(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// restore records again a room this process holds.
func (s *Service) restore(ctx context.Context, r *room) error {
	r.mu.Lock()
	if r.ended || r.pipeline == nil || r.noRecord {
		r.mu.Unlock()
		return nil
	}
	rec := store.Room{ID: r.id, Title: r.title, ProfileURL: r.profile, Presenter: r.presenter.email,
		PipelineID: r.pipeline.ID(), CreatedAt: r.pipeline.CreatedAt(), Owner: s.owner}
	viewers := make([]store.User, 0, len(r.viewers))
	for _, v := range r.viewers {
		viewers = append(viewers, userOf(v))
	}
	skipped, err := s.store.RestoreRoom(ctx, rec, userOf(r.presenter), viewers)
	r.mu.Unlock()
	switch {
	case isExists(err):
		s.log.Warn("cannot restore a room: its id or presenter was taken meanwhile", "room", r.id)
		s.teardown(ctx, r, ReasonReclaimed, "room taken while the store was away", StopEnded)
		return nil
	case err != nil:
		return err
	}
	s.log.Info("room record restored", "room", r.id, "viewers", len(viewers)-len(skipped))
	for _, email := range skipped {
		s.removeViewer(ctx, r, email, nil, ReasonReclaimed, "recorded in another room meanwhile", StopError)
	}
	return nil
}

func userOf(m *member) store.User {
	u := store.User{Email: m.email, RoomID: m.roomID, Role: m.role}
	if m.endpoint != nil {
		u.EndpointID = m.endpoint.ID()
	}
	if sess := m.sess(); sess != nil {
		u.SessionID = sess.ID()
	}
	return u
}

// reconcile compares the store's rooms with this process's and with the
// other owners' heartbeats. The caller holds own.mu.
func (s *Service) reconcile(ctx context.Context) (int, error) {
	recs, err := s.store.Rooms(ctx)
	if err != nil {
		return 0, err
	}
	checkViewers := s.own.checkViewers
	graceful := !s.own.backAt.IsZero() && time.Since(s.own.backAt) < s.opts.OwnerTTL
	alive := map[string]bool{}
	ended := 0
	for _, rec := range recs {
		if rec.Owner == s.owner {
			if err := s.repairOwn(ctx, rec, checkViewers); err != nil {
				return ended, err
			}
			continue
		}
		if graceful {
			continue
		}
		a, ok := alive[rec.Owner]
		if !ok {
			if a, err = s.store.OwnerAlive(ctx, rec.Owner); err != nil {
				return ended, err
			}
			alive[rec.Owner] = a
		}
		if !a && s.endRecord(ctx, rec, ReasonReclaimed, "its onair process vanished") {
			ended++
		}
	}
	s.own.checkViewers = false
	s.log.Debug("store synced", "owner", s.owner, "rooms", len(recs), "reclaimed", ended)
	return ended, nil
}

// repairOwn fixes the records of a room recorded as this process's.
func (s *Service) repairOwn(ctx context.Context, rec store.Room, checkViewers bool) error {
	if s.isPending(rec.PipelineID) {
		return nil // being created
	}
	r := s.room(rec.ID)
	if r == nil {
		return s.dropStale(ctx, rec)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended || r.pipeline == nil || r.pipeline.ID() != rec.PipelineID {
		return s.dropStale(ctx, rec)
	}
	if !checkViewers && rec.Viewers == len(r.viewers) && !s.clustered() {
		return nil
	}
	vs, err := s.store.Viewers(ctx, rec.ID)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return err
	}
	alive := map[string]bool{s.owner: true}
	for _, v := range vs {
		if _, ok := r.viewers[v.Email]; ok {
			continue
		}
		if v.Node != "" && v.Node != s.owner {
			// Served by another node (cluster.go): its record goes only
			// when that node is gone.
			a, ok := alive[v.Node]
			if !ok {
				if a, err = s.store.OwnerAlive(ctx, v.Node); err != nil {
					return err
				}
				alive[v.Node] = a
			}
			if a {
				continue
			}
		} else if v.Node == s.owner && s.clustered() {
			continue // a seat taken here whose offer has not come yet
		}
		s.log.Warn("removing the record of a viewer who left while the store was away", "room", rec.ID, "viewer", v.Email)
		if err := s.store.RemoveViewer(ctx, rec.ID, v.Email); err != nil && !isNotFound(err) {
			return err
		}
	}
	return nil
}

// dropStale removes the record of a room this process no longer holds: it
// was ended while the store was away, and its events were emitted then.
func (s *Service) dropStale(ctx context.Context, rec store.Room) error {
	if _, err := s.store.DeleteRoom(ctx, rec.ID, rec.PipelineID); err != nil && !isNotFound(err) {
		return err
	}
	s.log.Warn("removed the record of a room this process no longer holds", "room", rec.ID, "pipeline", rec.PipelineID)
	return nil
}

// endRecord ends a room that has a record but no media anywhere, as if its
// presenter had dropped: the record goes, viewers and room.finished events
// are emitted. Only the caller whose delete removed the record does so; it
// reports whether that was this call.
func (s *Service) endRecord(ctx context.Context, rec store.Room, reason, why string) bool {
	viewers, err := s.store.DeleteRoom(ctx, rec.ID, rec.PipelineID)
	if err != nil {
		if !isNotFound(err) {
			s.log.Error("cannot delete room record", "room", rec.ID, "err", err)
		}
		return false
	}
	r := &room{id: rec.ID, title: rec.Title, profile: rec.ProfileURL, viewers: map[string]*member{},
		noRecord: true, presenter: &member{email: rec.Presenter, roomID: rec.ID, role: store.RolePresenter}}
	for _, v := range viewers {
		r.viewers[v.Email] = &member{email: v.Email, roomID: rec.ID, role: store.RoleViewer}
	}
	s.log.Warn("ending a room whose media is gone", "room", rec.ID, "owner", rec.Owner, "why", why,
		"viewers", len(viewers))
	s.teardown(ctx, r, reason, why, StopEnded)
	return true
}

// endElsewhere ends a room that has a record but no media in this process
// (DELETE /room/live reached a process that does not hold the room).
func (s *Service) endElsewhere(ctx context.Context, roomID string) error {
	rec, err := s.store.Room(ctx, roomID)
	if isNotFound(err) {
		// Only leftovers: remove them.
		if _, err := s.store.DeleteRoom(ctx, roomID, ""); err != nil && !isNotFound(err) {
			return s.storeErr(err)
		}
		return nil
	} else if err != nil {
		return s.storeErr(err)
	}
	alive := rec.Owner == s.owner
	if !alive {
		if alive, err = s.store.OwnerAlive(ctx, rec.Owner); err != nil {
			return s.storeErr(err)
		}
	}
	if alive {
		// This process's stale record, or another live process's room: that
		// process finds its media orphaned and ends it (see Orphans).
		if _, err := s.store.DeleteRoom(ctx, roomID, rec.PipelineID); err != nil && !isNotFound(err) {
			return s.storeErr(err)
		}
		return nil
	}
	s.endRecord(ctx, rec, ReasonEnded, "ended by presenter")
	return nil
}

// elsewhere explains why a room this process does not hold cannot be joined.
func (s *Service) elsewhere(ctx context.Context, roomID string) error {
	rec, err := s.store.Room(ctx, roomID)
	switch {
	case isNotFound(err):
	case err != nil:
		return s.storeErr(err)
	case rec.Owner != s.owner:
		return ErrNoRoom.With("room %s is live on another onair process (%s): its viewers must connect to that process",
			roomID, rec.Owner)
	}
	return ErrNoRoom.With("no live room %s", roomID)
}

// roomList is a snapshot of the rooms this process holds.
func (s *Service) roomList() []*room {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Values(s.rooms))
}

func (s *Service) isPending(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending[id]
}
