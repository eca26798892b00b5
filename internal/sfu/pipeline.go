package sfu

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/onair-live/onair/internal/media"
)

// Pipeline implements media.Pipeline: one broadcast's endpoints and tracks.
type Pipeline struct {
	engine  *Engine
	id      string
	name    string
	created time.Time
	log     *slog.Logger

	mu        sync.Mutex
	endpoints map[string]*Endpoint
	publisher *Endpoint
	tracks    []*upTrack
	ready     chan struct{} // closed once tracks is set
	released  bool
}

var _ media.Pipeline = (*Pipeline)(nil)

func newPipeline(e *Engine, id, name string) *Pipeline {
	return &Pipeline{
		engine:    e,
		id:        id,
		name:      name,
		created:   time.Now(),
		log:       e.log.With("pipeline", id, "pipelineName", name),
		endpoints: map[string]*Endpoint{},
		ready:     make(chan struct{}),
	}
}

func (p *Pipeline) ID() string           { return p.id }
func (p *Pipeline) Name() string         { return p.name }
func (p *Pipeline) CreatedAt() time.Time { return p.created }

// NewEndpoint creates an endpoint. Its peer connection is made when its offer
// arrives, so an endpoint that is never negotiated costs almost nothing.
func (p *Pipeline) NewEndpoint(role media.Role, name string, ev media.Events) (media.Endpoint, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.released {
		return nil, media.ErrReleased
	}
	if role == media.Publisher && p.publisher != nil {
		return nil, errSecondPublisher
	}
	ep := newEndpoint(p, role, name, ev)
	p.endpoints[ep.id] = ep
	if role == media.Publisher {
		p.publisher = ep
	}
	ep.log.Debug("endpoint created")
	return ep, nil
}

// Endpoints lists the pipeline's endpoints, oldest first.
func (p *Pipeline) Endpoints() []media.Endpoint {
	p.mu.Lock()
	eps := make([]*Endpoint, 0, len(p.endpoints))
	for _, ep := range p.endpoints {
		eps = append(eps, ep)
	}
	p.mu.Unlock()
	sort.Slice(eps, func(i, j int) bool { return eps[i].created.Before(eps[j].created) })
	out := make([]media.Endpoint, len(eps))
	for i, ep := range eps {
		out[i] = ep
	}
	return out
}

// Release releases every endpoint, then forgets the pipeline.
func (p *Pipeline) Release() {
	p.mu.Lock()
	if p.released {
		p.mu.Unlock()
		return
	}
	p.released = true
	eps := make([]*Endpoint, 0, len(p.endpoints))
	for _, ep := range p.endpoints {
		eps = append(eps, ep)
	}
	p.mu.Unlock()
	for _, ep := range eps {
		ep.Release()
	}
	p.engine.forget(p)
	p.log.Debug("pipeline released")
}

// publish makes the presenter's negotiated tracks available to viewers.
func (p *Pipeline) publish(tracks []*upTrack) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tracks != nil {
		return
	}
	p.tracks = tracks
	close(p.ready)
}

// publishedTracks waits until the presenter's offer has been negotiated.
func (p *Pipeline) publishedTracks(ctx context.Context) ([]*upTrack, error) {
	ctx, cancel := context.WithTimeout(ctx, p.engine.cfg.PresenterWait)
	defer cancel()
	select {
	case <-p.ready:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.tracks, nil
	case <-ctx.Done():
		return nil, media.ErrNotReady
	}
}

// forget drops a released endpoint.
func (p *Pipeline) forget(ep *Endpoint) {
	p.mu.Lock()
	delete(p.endpoints, ep.id)
	p.mu.Unlock()
}
