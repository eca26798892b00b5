// Package media declares the media engine as the broadcast domain sees it, in
// the Kurento tradition: a Pipeline per broadcast and an Endpoint per peer.
//
// It owns only the interface and its value types. The embedded implementation
// is internal/sfu; the domain (internal/live) depends on this package alone and
// never on pion.
package media

import (
	"context"
	"errors"
	"time"
)

// Role says which way media flows through an endpoint.
type Role int

const (
	// Publisher endpoints receive the broadcast from its presenter.
	Publisher Role = iota + 1
	// Subscriber endpoints send the broadcast to one viewer.
	Subscriber
	// Recorder endpoints hand the broadcast to a Sink (see sink.go).
	Recorder
)

func (r Role) String() string {
	switch r {
	case Publisher:
		return "publisher"
	case Subscriber:
		return "subscriber"
	case Recorder:
		return "recorder"
	}
	return "unknown"
}

// ICEServer is a STUN or TURN server that clients of the media engine may use
// to reach it; the transports advertise them in their own formats.
type ICEServer struct {
	URLs       []string
	Username   string
	Credential string
}

// Candidate is an ICE candidate with the fields browsers give one
// (RTCIceCandidateInit); the transports carry it in their own formats.
type Candidate struct {
	Candidate        string
	SDPMid           *string
	SDPMLineIndex    *uint16
	UsernameFragment *string
}

// Events are the callbacks an endpoint makes to its owner. They may be called
// from the engine's goroutines and must not block.
type Events struct {
	// Candidate receives each local ICE candidate as it is gathered.
	Candidate func(Candidate)
	// Failed is called at most once, when the media connection failed or
	// stayed disconnected past the configured timeout. The owner releases
	// the endpoint.
	Failed func(reason string)
}

// Engine creates and lists pipelines.
type Engine interface {
	NewPipeline(name string) (Pipeline, error)
	Pipelines() []Pipeline
	// Usage reports the engine's own CPU and memory use.
	Usage() Usage
	Close() error
}

// Pipeline is the media of one broadcast: one publisher endpoint and any
// number of subscriber endpoints fed from it.
type Pipeline interface {
	ID() string
	Name() string
	CreatedAt() time.Time
	NewEndpoint(role Role, name string, ev Events) (Endpoint, error)
	// NewRecorder creates a Recorder endpoint that feeds the broadcast to
	// sink like a viewer, and closes sink when it is released.
	NewRecorder(name string, sink Sink) (Endpoint, error)
	Endpoints() []Endpoint
	// Release releases every endpoint and the pipeline. Idempotent.
	Release()
}

// Endpoint is one peer's media connection.
type Endpoint interface {
	ID() string
	Name() string
	Role() Role
	// ProcessOffer negotiates the peer's SDP offer and returns the answer.
	// Local candidates are then trickled through Events.Candidate.
	ProcessOffer(ctx context.Context, offer string) (answer string, err error)
	// ProcessOfferGathered is ProcessOffer, but waits for candidate gathering
	// to finish and returns an answer that carries every local candidate
	// (for clients without trickle, such as WHIP encoders).
	ProcessOfferGathered(ctx context.Context, offer string) (answer string, err error)
	// RestartICE restarts ICE with the peer's new credentials (a WHIP/WHEP
	// ICE restart) and returns the new local description, candidates included.
	RestartICE(ctx context.Context, ufrag, pwd string) (localSDP string, err error)
	// AddCandidate adds a remote candidate. Candidates that arrive before the
	// offer are queued and applied once it is processed.
	AddCandidate(c Candidate) error
	Stats() EndpointStats
	// Release closes the connection and frees everything. Idempotent.
	Release()
}

// Exchange sends a local SDP offer to a remote server and returns its answer.
type Exchange func(ctx context.Context, offer string) (answer string, err error)

// Puller is a Publisher endpoint that receives the broadcast from another
// server instead of from a presenter: a relay pull. Pull makes an offer to
// receive audio and video, has exchange deliver it (a WHEP request), and
// applies the answer; what arrives is the pipeline's published media, as a
// presenter's would be. Calling Pull again, after Events.Failed (the server
// pulled from went away), replaces the connection and feeds the same
// tracks, so that the pipeline's viewers stay attached.
type Puller interface {
	Pull(ctx context.Context, exchange Exchange) error
}

// EndpointStats are an endpoint's counters since it was created.
type EndpointStats struct {
	State          string
	PacketsIn      uint64
	PacketsOut     uint64
	BytesIn        uint64 // RTP header and payload
	BytesOut       uint64 // RTP header and payload
	PacketsDropped uint64
	NACKs          uint64
	PLIs           uint64
	// PacketsDirect counts the packets of PacketsOut that the SFU encrypted
	// and sent itself, on the viewer's own socket, rather than through
	// pion's RTP sender.
	PacketsDirect uint64
	// PacketsDuplicate counts the packets of PacketsIn (a presenter's or a
	// relay pull's) dropped as copies of packets already forwarded: a
	// browser's RTX padding, or a new node's replay after a relay failover.
	PacketsDuplicate uint64
	// A viewer of a simulcast broadcast: the layer it is sent (h, m or l),
	// whether it pinned it, its estimated downlink in bit/s (0 while no
	// limit has been seen), and its switches of layer.
	Layer         string
	LayerPinned   bool
	EstimateBPS   uint64
	LayerSwitches uint64
	// A relay of a simulcast broadcast, at either end: the layers it
	// carries, lowest first (l, m, h).
	Layers []string
}

// Traffic is an engine's endpoint counters summed over every endpoint it has
// had, released ones included: each figure only grows.
type Traffic struct {
	PacketsIn, PacketsOut uint64
	BytesIn, BytesOut     uint64
	// PacketsDropped counts packets a slow viewer's full queue refused.
	PacketsDropped uint64
	NACKs, PLIs    uint64
	// LayerSwitches counts simulcast viewers' switches of layer.
	LayerSwitches uint64
	// PacketsDuplicate counts presenters' packets dropped at ingest as
	// copies of packets already forwarded (see EndpointStats).
	PacketsDuplicate uint64
}

// Usage is how much of the machine the media engine uses, in percent.
type Usage struct {
	CPUPercent    float64
	MemoryPercent float64
	RSSBytes      uint64
}

// Errors the engine returns. Wrapped errors carry the detail.
var (
	// ErrBadOffer: the offer is not SDP the engine can negotiate.
	ErrBadOffer = errors.New("invalid SDP offer")
	// ErrIncompatible: the peer supports none of the broadcast's codecs.
	ErrIncompatible = errors.New("no codec in common with the broadcast")
	// ErrNotReady: a viewer offered before the presenter's media was negotiated.
	ErrNotReady = errors.New("the presenter is not streaming yet")
	// ErrAlreadyNegotiated: a second offer for an endpoint that has one.
	ErrAlreadyNegotiated = errors.New("endpoint already negotiated")
	// ErrNotNegotiated: an ICE restart before any offer.
	ErrNotNegotiated = errors.New("endpoint has not been negotiated")
	// ErrReleased: the endpoint or pipeline was released.
	ErrReleased = errors.New("released")
	// ErrBadCandidate: the candidate cannot be parsed.
	ErrBadCandidate = errors.New("invalid ICE candidate")
	// ErrTooManyCandidates: the endpoint's queue of early candidates is full.
	ErrTooManyCandidates = errors.New("too many ICE candidates")
)
