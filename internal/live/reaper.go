package live

import (
	"context"
	"time"

	"github.com/onair-live/onair/internal/media"
)

// Orphans lists pipelines that no room owns, and endpoints of owned pipelines
// that no user owns. Objects still being set up are not orphans.
func (s *Service) Orphans(ctx context.Context) (pipelines []media.Pipeline, endpoints []media.Endpoint, err error) {
	// Compare only with a store that holds this process's records: renew the
	// heartbeat first (restoring them if the store had lost them), check it
	// again after reading, and keep Sync out meanwhile (ownership.go).
	s.own.mu.Lock()
	defer s.own.mu.Unlock()
	if err := s.claim(ctx); err != nil {
		return nil, nil, s.storeErr(err)
	}
	// Snapshot the engine and the pending set together, then read the store:
	// whatever was pending at the snapshot is either still pending or recorded.
	s.mu.Lock()
	all := s.engine.Pipelines()
	pending := make(map[string]bool, len(s.pending))
	for id := range s.pending {
		pending[id] = true
	}
	type epList struct {
		pl  media.Pipeline
		eps []media.Endpoint
	}
	lists := make([]epList, len(all))
	for i, pl := range all {
		lists[i] = epList{pl, pl.Endpoints()}
	}
	s.mu.Unlock()
	s.exempt(pending) // cluster.go

	rooms, err := s.store.Rooms(ctx)
	if err != nil {
		return nil, nil, s.storeErr(err)
	}
	if alive, err := s.store.OwnerAlive(ctx, s.owner); err != nil {
		return nil, nil, s.storeErr(err)
	} else if !alive {
		return nil, nil, ErrUnavailable.With("the store lost this process's records meanwhile; try again")
	}
	owner := map[string]string{} // pipeline id to room id
	for _, r := range rooms {
		owner[r.PipelineID] = r.ID
	}
	for _, l := range lists {
		roomID, owned := owner[l.pl.ID()]
		if !owned {
			if !pending[l.pl.ID()] {
				pipelines = append(pipelines, l.pl)
			}
			continue
		}
		users := map[string]bool{}
		viewers, err := s.store.Viewers(ctx, roomID)
		if err != nil {
			if isNotFound(err) {
				continue // ended meanwhile
			}
			return nil, nil, s.storeErr(err)
		}
		for _, v := range viewers {
			users[v.EndpointID] = true
		}
		for _, r := range rooms {
			if r.ID == roomID {
				if u, err := s.store.User(ctx, r.Presenter); err == nil {
					users[u.EndpointID] = true
				}
			}
		}
		for _, ep := range l.eps {
			if ep.Role() == media.Recorder {
				continue // the room's own recorder, released with its pipeline
			}
			if !users[ep.ID()] && !pending[ep.ID()] {
				endpoints = append(endpoints, ep)
			}
		}
	}
	return pipelines, endpoints, nil
}

// ReclaimOrphans releases what Orphans finds. A room whose record is gone
// is ended as if its presenter had left, so its viewers are told.
func (s *Service) ReclaimOrphans(ctx context.Context) (int, error) {
	pipelines, endpoints, err := s.Orphans(ctx)
	if err != nil {
		return 0, err
	}
	for _, pl := range pipelines {
		var owner *room
		s.mu.Lock()
		for _, r := range s.rooms {
			if r.pipeline != nil && r.pipeline.ID() == pl.ID() {
				owner = r
			}
		}
		s.mu.Unlock()
		s.log.Warn("reclaiming orphan pipeline", "pipeline", pl.ID(), "pipelineName", pl.Name())
		if owner != nil {
			s.teardown(ctx, owner, ReasonReclaimed, "room record vanished", StopEnded)
		} else {
			pl.Release()
		}
	}
	for _, ep := range endpoints {
		s.log.Warn("reclaiming orphan endpoint", "endpoint", ep.ID(), "endpointName", ep.Name())
		if !s.dropMemberOf(ctx, ep) {
			ep.Release()
		}
	}
	return len(pipelines) + len(endpoints), nil
}

// dropMemberOf removes the viewer whose endpoint ep is, if any.
func (s *Service) dropMemberOf(ctx context.Context, ep media.Endpoint) bool {
	for _, r := range s.roomList() {
		r.mu.Lock()
		var email string
		for e, v := range r.viewers {
			if v.endpoint == ep {
				email = e
			}
		}
		r.mu.Unlock()
		if email != "" {
			return s.removeViewer(ctx, r, email, ep, ReasonReclaimed, "viewer record vanished", StopError)
		}
	}
	return false
}

// RunReaper reclaims orphans every ReapInterval until ctx ends.
func (s *Service) RunReaper(ctx context.Context) {
	if s.opts.ReapInterval <= 0 {
		return
	}
	t := time.NewTicker(s.opts.ReapInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.reap(ctx)
	}
}

// reap is one run of the reaper.
func (s *Service) reap(ctx context.Context) {
	if n, err := s.ReclaimOrphans(ctx); err != nil {
		s.log.Warn("reaper could not run", "err", err)
	} else if n > 0 {
		s.log.Warn("reaper reclaimed orphans", "count", n)
	}
}

// Pipelines lists the media engine's pipelines.
func (s *Service) Pipelines() []media.Pipeline { return s.engine.Pipelines() }

// PresenterEndpoints lists the endpoints of the pipeline a presenter owns.
func (s *Service) PresenterEndpoints(ctx context.Context, email string) ([]media.Endpoint, error) {
	u, err := s.store.User(ctx, email)
	if isNotFound(err) {
		return nil, ErrNoRoom.With("%s is not presenting", email)
	} else if err != nil {
		return nil, s.storeErr(err)
	}
	rec, err := s.store.Room(ctx, u.RoomID)
	if isNotFound(err) || (err == nil && rec.Presenter != email) {
		return nil, ErrNoRoom.With("%s is not presenting", email)
	} else if err != nil {
		return nil, s.storeErr(err)
	}
	for _, pl := range s.engine.Pipelines() {
		if pl.ID() == rec.PipelineID {
			return pl.Endpoints(), nil
		}
	}
	if r := s.room(rec.ID); r != nil && r.relay != nil && r.pipeline != nil {
		return r.pipeline.Endpoints(), nil // the room pulled from another node (cluster.go)
	}
	return nil, ErrNoRoom.With("room %s has no pipeline in this process", rec.ID)
}

// Usage is the media engine's CPU and memory use.
func (s *Service) Usage() media.Usage { return s.engine.Usage() }
