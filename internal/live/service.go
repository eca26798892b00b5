// Package live is the broadcast domain: rooms, presenters and viewers, and
// every rule of their lifecycle (create, join, leave, end, abnormal exit,
// orphan reclaim). It is the only package that touches both the store and the
// media engine, and the one place where the order of those steps is decided.
//
// It knows nothing of HTTP, WebSocket or pion: transports call it, and it sees
// the media engine through internal/media and the state through internal/store.
package live

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onair-live/onair/internal/media"
	"github.com/onair-live/onair/internal/store"
	"github.com/onair-live/onair/internal/waitgroup"
)

// StopReason says why a client is told its broadcast stopped.
type StopReason int

const (
	// StopEnded: the presenter ended the broadcast, left, or it was shut down.
	StopEnded StopReason = iota + 1
	// StopError: the session was torn down by an error (its media failed).
	StopError
)

// Session is a client's signalling connection, as the domain sees it. Its
// methods must not block.
type Session interface {
	ID() string
	SendCandidate(media.Candidate)
	Stop(StopReason)
}

// Releaser is what a Session may also be, to hear that the domain has let
// go of it for whatever reason (left, ended, media lost, shut down), even
// when it is not told with Stop (a presenter is not): a WHIP or WHEP
// resource is retired then. Released must not block.
type Releaser interface {
	Released()
}

// Options tune the service.
type Options struct {
	Logger *slog.Logger
	// ReapInterval is how often orphan pipelines and endpoints are reclaimed (0: never).
	ReapInterval time.Duration
	// Owner names this process in the store (default NewOwnerID()), and
	// OwnerTTL is how long its rooms outlive its last heartbeat (default
	// DefaultOwnerTTL); see ownership.go.
	Owner    string
	OwnerTTL time.Duration
	// OnEvent observes lifecycle events (see events.go); it must not block.
	OnEvent func(Event)
	// Admit, if set, is asked before a broadcast is created: an error
	// refuses it as ErrUnavailable, with the error's text as the detail
	// (the media engine is over its hard limit).
	Admit func() error
	// OnMediaError observes what the media engine failed to do (create a
	// pipeline or an endpoint), for alerts; it must not block.
	OnMediaError func(what string, err error)
	// Recorder, if set, makes the recording of a broadcast whose presenter's
	// offer was accepted (recording.go). It must not block.
	Recorder func(RecordingStart) (RecordingSink, error)
	// Limits bound rooms, viewers and candidates (access.go).
	Limits Limits
	// OfferWait is how long a broadcast or seat made without its offer
	// (over REST) waits for it before it is reclaimed (0: for ever);
	// offerwait.go.
	OfferWait time.Duration
	// OnRejected observes each request the domain refuses by a grant or a
	// limit, by reason (the Reject* constants), for metrics; it must not
	// block.
	OnRejected func(reason string)
	// Cluster, if set, makes this process one node of several that serve
	// every room together, and RelayGrace is how long a room pulled from
	// another node outlives its last viewer here (cluster.go).
	Cluster    Cluster
	RelayGrace time.Duration
	// AdmitViewer, if set, is asked before this node takes a new viewer
	// (cluster): an error refuses it as ErrUnavailable wrapping ErrNodeBusy
	// (the node is draining or over its limit), which transports turn into
	// a redirect or a 503 with Retry-After.
	AdmitViewer func() error
}

// Service implements the broadcast lifecycle.
type Service struct {
	store  store.Store
	engine media.Engine
	log    *slog.Logger
	opts   Options
	owner  string
	own    ownership // heartbeat and reconciliation (ownership.go)

	mu       sync.Mutex
	rooms    map[string]*room   // by room id
	sessions map[string]*member // by signalling session id
	pending  map[string]bool    // media ids made but not yet recorded in the store
	closed   bool

	// tearing counts room teardowns under way; Shutdown waits for it to
	// reach zero, and torn is signalled when it does (broadcast.go).
	tearing atomic.Int64
	torn    chan struct{}

	// bg runs what a cluster room starts in the background (a pull being
	// released at the node pulled from, a pulled room being ended): Shutdown
	// waits for it (cluster.go).
	bg sync.WaitGroup
}

// room is the runtime half of a broadcast: the media objects behind the
// store's record. Its mutex serializes the room's lifecycle steps.
type room struct {
	id        string
	title     string
	profile   string
	mu        sync.Mutex
	pipeline  media.Pipeline
	presenter *member
	viewers   map[string]*member
	ended     bool
	noRecord  bool                 // a room of a vanished process, whose record was removed first (ownership.go)
	recording RecordingSink        // once the presenter's offer is accepted, if recording
	relay     *pulled              // the room is pulled from another node (cluster.go)
	relays    map[string]*relayOut // nodes pulling the room from this one, by node (relayout.go)
}

// member is a presenter or viewer of a room, with its endpoint and session.
type member struct {
	email    string
	roomID   string
	role     store.Role
	endpoint media.Endpoint
	offered  bool // an offer was accepted (guarded by room.mu)
	// offerWait ends the member if no offer comes (offerwait.go; guarded
	// by room.mu).
	offerWait *time.Timer
	// candidates counts the client's ICE candidates given to the endpoint
	// (access.go: Limits.MaxCandidates).
	candidates atomic.Int64
	session    atomic.Pointer[sessionRef]
}

type sessionRef struct{ Session }

func (m *member) sess() Session {
	if r := m.session.Load(); r != nil {
		return r.Session
	}
	return nil
}

// New makes a service over a store and a media engine.
func New(st store.Store, engine media.Engine, opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Owner == "" {
		opts.Owner = NewOwnerID()
	}
	if opts.OwnerTTL <= 0 {
		opts.OwnerTTL = DefaultOwnerTTL
	}
	return &Service{
		store: st, engine: engine, opts: opts, owner: opts.Owner,
		log:      opts.Logger.With("component", "live"),
		rooms:    map[string]*room{},
		sessions: map[string]*member{},
		pending:  map[string]bool{},
		torn:     make(chan struct{}, 1),
	}
}

// RoomInfo is a room as clients see it.
type RoomInfo struct {
	RoomID     string
	Title      string
	ProfileURL string
	Count      int
}

func infoOf(r store.Room) RoomInfo {
	return RoomInfo{RoomID: r.ID, Title: r.Title, ProfileURL: r.ProfileURL, Count: r.Viewers}
}

// Rooms lists the live rooms.
func (s *Service) Rooms(ctx context.Context) ([]RoomInfo, error) {
	rs, err := s.store.Rooms(ctx)
	if err != nil {
		return nil, s.storeErr(err)
	}
	out := make([]RoomInfo, len(rs))
	for i, r := range rs {
		out[i] = infoOf(r)
	}
	return out, nil
}

func (s *Service) room(id string) *room {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rooms[id]
}

// storeErr turns a store failure into the error clients see.
func (s *Service) storeErr(err error) error {
	s.log.Error("store failed", "err", err)
	return ErrUnavailable.With("the room store cannot be reached; try again shortly").Wrap(err)
}

// Health reports whether the service can take requests.
func (s *Service) Health(ctx context.Context) error {
	if err := s.store.Ping(ctx); err != nil {
		return ErrUnavailable.With("store unreachable").Wrap(err)
	}
	return nil
}

// Counts are the numbers of live objects, for tests and metrics.
type Counts struct {
	Rooms, Viewers, Sessions, Pipelines, Endpoints int
}

// Counts counts rooms and sessions held by the service, and the media
// engine's pipelines and endpoints.
func (s *Service) Counts() Counts {
	var c Counts
	s.mu.Lock()
	c.Rooms, c.Sessions = len(s.rooms), len(s.sessions)
	rooms := slices.Collect(maps.Values(s.rooms))
	s.mu.Unlock()
	for _, r := range rooms {
		r.mu.Lock()
		c.Viewers += len(r.viewers)
		r.mu.Unlock()
	}
	for _, p := range s.engine.Pipelines() {
		c.Pipelines++
		c.Endpoints += len(p.Endpoints())
	}
	return c
}

// Shutdown ends every broadcast (viewers are told it stopped) and refuses
// new ones.
func (s *Service) Shutdown(ctx context.Context) {
	s.mu.Lock()
	s.closed = true
	rooms := slices.Collect(maps.Values(s.rooms))
	s.mu.Unlock()
	sort.Slice(rooms, func(i, j int) bool { return rooms[i].id < rooms[j].id })
	for _, r := range rooms {
		s.teardown(ctx, r, ReasonShutdown, "server shutting down", StopEnded)
	}
	// Pulls being released and pulled rooms being ended, each bounded by
	// its own timeout: a room they end counts in tearing, waited for next.
	waitgroup.Await(&s.bg, ctx.Done(), nil)
	// Some rooms were being torn down already (their presenter left or its
	// media failed just before): wait for them too, or their media and
	// records would be released after Shutdown returns (and the store closed).
	for s.tearing.Load() > 0 {
		select {
		case <-s.torn:
		case <-ctx.Done():
			s.log.Warn("shutdown timed out waiting for rooms being ended", "rooms", s.tearing.Load())
			return
		}
	}
	s.log.Info("all broadcasts ended", "rooms", len(rooms))
	// Nothing is left behind: this process's heartbeat goes too.
	s.own.mu.Lock()
	defer s.own.mu.Unlock()
	if err := s.store.Retire(context.WithoutCancel(ctx), s.owner); err != nil {
		s.log.Warn("cannot remove this process's heartbeat", "owner", s.owner, "err", err)
	}
}

// bind records that a session signals for a member; it fails if the session
// already signals for someone else.
func (s *Service) bind(sess Session, m *member) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if other, ok := s.sessions[sess.ID()]; ok && other != m {
		return ErrSessionBound
	}
	if old := m.sess(); old != nil && old.ID() != sess.ID() {
		delete(s.sessions, old.ID())
	}
	s.sessions[sess.ID()] = m
	m.session.Store(&sessionRef{sess})
	return nil
}

// unbind forgets a member's session, and tells it if it wants to know.
func (s *Service) unbind(m *member) {
	s.mu.Lock()
	old := m.sess()
	bound := old != nil && s.sessions[old.ID()] == m
	if bound {
		delete(s.sessions, old.ID())
	}
	s.mu.Unlock()
	if r, ok := old.(Releaser); ok && bound {
		r.Released()
	}
}

func (s *Service) markPending(id string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.pending[id] = true
	} else {
		delete(s.pending, id)
	}
}

// isNotFound reports a store miss.
func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// isExists reports a store conflict.
func isExists(err error) bool { return errors.Is(err, store.ErrExists) }
