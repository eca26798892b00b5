// Package sfu is onair's embedded media engine: a selective forwarding unit on
// pion/webrtc that implements internal/media. A Pipeline holds one broadcast:
// the presenter's publisher endpoint and its published tracks, and the
// viewers' subscriber endpoints, each fed from those tracks.
//
// It owns every pion object it creates and releases them; it knows nothing of
// rooms, users, HTTP or the signalling protocol.
package sfu

import (
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/media"
	"github.com/onair-live/onair/internal/randid"
	"github.com/onair-live/onair/internal/sfu/udpbatch"
	"github.com/onair-live/onair/internal/sysstat"
)

// Config is what the engine needs to know of the network and its timeouts.
type Config struct {
	// UDPPortMin and UDPPortMax bound the ephemeral ports used for ICE (0: any).
	UDPPortMin, UDPPortMax uint16
	// UDPMuxPort, when set, serves every peer on this one UDP port.
	UDPMuxPort int
	// TCPMuxPort, when set, also offers passive ICE-TCP candidates on this
	// one TCP port (tcp.go): a fallback for peers whose UDP is blocked.
	TCPMuxPort int
	// TCPMaxConns bounds the connections TCPMuxPort holds at once (0: 4096).
	TCPMaxConns int
	// PublicIPs are advertised as host candidates in place of local ones (NAT 1:1).
	PublicIPs []string
	// Loopback offers loopback candidates (tests and local demos).
	Loopback bool
	// AllowedIPs, when set, limits candidate gathering to these local addresses or prefixes.
	AllowedIPs []netip.Prefix
	// DisconnectTimeout ends an endpoint whose connection stays disconnected this long.
	DisconnectTimeout time.Duration
	// ConnectTimeout ends an endpoint that has not connected this long after its offer.
	ConnectTimeout time.Duration
	// PresenterWait is how long a viewer's offer waits for the presenter's to be negotiated.
	PresenterWait time.Duration
	// MaxVideoBitrate (bit/s) is asked of presenters with REMB and b=AS/TIAS; 0 is no cap.
	MaxVideoBitrate int
	// QueueLength is a recorder's packet queue length; a writer shard's
	// queue holds four times as many.
	QueueLength int
	// Writers is the number of goroutines that send to viewers, each to a
	// shard of them (writers.go); 0 is one per core (GOMAXPROCS).
	Writers int
	Logger  *slog.Logger

	// SendPerPacket sends each packet to a viewer as soon as it is queued,
	// with a system call of its own, as before batched sends (UDP GSO, one
	// writer wakeup per frame): for comparison, and a way out should a
	// network path mishandle batches.
	SendPerPacket bool

	// SocketPerViewer gives each viewer UDP sockets of its own, as before
	// viewers shared their writer shard's sockets (shardsock.go): for
	// comparison, and a way out should a network path need a port per peer.
	SocketPerViewer bool

	// OnConnect, if set, is told each endpoint's time from its offer to its
	// first media connection (stats.go). It must not block.
	OnConnect func(role media.Role, took time.Duration)
}

func (c *Config) setDefaults() {
	if c.DisconnectTimeout <= 0 {
		c.DisconnectTimeout = 15 * time.Second
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 30 * time.Second
	}
	if c.PresenterWait <= 0 {
		c.PresenterWait = 10 * time.Second
	}
	if c.QueueLength <= 0 {
		c.QueueLength = 2048 // holds a replayed group of pictures (maxReplay) and more
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Engine implements media.Engine.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	setting webrtc.SettingEngine
	udpMux  ice.UDPMux
	tcpMux  ice.TCPMux   // nil without Config.TCPMuxPort
	tcpCap  *capListener // the listener of tcpMux: tcp.go
	sampler *sysstat.Sampler
	batches *udpbatch.Buffers // lent to viewers' sockets while they batch sends
	// shardBatches are lent to the writers' sockets (writers.go), which
	// batch the sends to many viewers.
	shardBatches *udpbatch.Buffers
	sndBufWarned atomic.Bool // a writer's socket got less send buffer than asked: shardsock.go
	stats        engineStats // totals of released endpoints: stats.go
	writers      *writerPool // send to viewers: writers.go

	mu        sync.Mutex
	pipelines map[string]*Pipeline
	closed    bool

	// failures are the Events.Failed calls in flight. They run outside the
	// endpoint's own goroutines (the owner releases the endpoint from the
	// call, and Release waits for those), so the engine owns them and
	// Close waits for them.
	failures sync.WaitGroup
}

var _ media.Engine = (*Engine)(nil)

// New builds an engine. With a UDPMuxPort it listens on that port at once.
func New(cfg Config) (*Engine, error) {
	cfg.setDefaults()
	e := &Engine{
		cfg:          cfg,
		log:          cfg.Logger.With("component", "sfu"),
		pipelines:    map[string]*Pipeline{},
		sampler:      sysstat.NewSampler(),
		batches:      udpbatch.NewBuffers(),
		shardBatches: udpbatch.NewBuffersSized(shardBatchBytes, shardBatchRuns),
	}
	e.writers = newWriterPool(e)
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(cfg.Loopback)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	// ICE calls a peer disconnected after iceSilence without a packet; our
	// own timer then ends it when the rest of DisconnectTimeout has passed,
	// so that a dead peer goes DisconnectTimeout after its last packet.
	// ICE's own failure comes later and does not pre-empt that.
	se.SetICETimeouts(iceSilence(cfg.DisconnectTimeout), cfg.DisconnectTimeout+10*time.Second, 2*time.Second)
	// AES-GCM first: several times cheaper per packet than AES-CM + HMAC-SHA1.
	se.SetSRTPProtectionProfiles(
		dtls.SRTP_AEAD_AES_128_GCM,
		dtls.SRTP_AES128_CM_HMAC_SHA1_80,
	)
	if len(cfg.PublicIPs) > 0 {
		se.SetNAT1To1IPs(cfg.PublicIPs, webrtc.ICECandidateTypeHost)
	}
	if len(cfg.AllowedIPs) > 0 {
		allowed := cfg.AllowedIPs
		se.SetIPFilter(func(ip net.IP) bool { return ipAllowed(allowed, ip) })
	}
	if cfg.UDPMuxPort > 0 {
		mux, err := ice.NewMultiUDPMuxFromPort(cfg.UDPMuxPort,
			ice.UDPMuxFromPortWithLoopback(),
			ice.UDPMuxFromPortWithIPFilter(func(ip net.IP) bool { return ipAllowed(cfg.AllowedIPs, ip) }),
		)
		if err != nil {
			return nil, fmt.Errorf("sfu: listen on UDP port %d: %w", cfg.UDPMuxPort, err)
		}
		e.udpMux = mux
		se.SetICEUDPMux(mux)
	} else if cfg.UDPPortMin > 0 || cfg.UDPPortMax > 0 {
		if err := se.SetEphemeralUDPPortRange(cfg.UDPPortMin, cfg.UDPPortMax); err != nil {
			return nil, fmt.Errorf("sfu: UDP port range %d-%d: %w", cfg.UDPPortMin, cfg.UDPPortMax, err)
		}
	}
	if err := e.listenICETCP(&se); err != nil {
		if e.udpMux != nil {
			_ = e.udpMux.Close()
		}
		return nil, err
	}
	if e.udpMux == nil {
		// Presenters' and relays' sockets too read and write with raw
		// system calls (udpbatch.Conn); they never batch.
		n, err := udpbatch.NewNet(e.batches)
		if err != nil {
			if e.tcpMux != nil {
				_ = e.tcpMux.Close()
			}
			return nil, fmt.Errorf("sfu: network: %w", err)
		}
		se.SetNet(n)
	}
	e.setting = se
	return e, nil
}

// shardSockets tells whether viewers are served on their writer's socket
// (writers.go) rather than on sockets of their own.
func (e *Engine) shardSockets() bool {
	return e.udpMux == nil && !e.cfg.SendPerPacket && !e.cfg.SocketPerViewer
}

// iceSilence is how long ICE waits without a packet before it calls a peer
// disconnected: 5 s (pion's default, beyond a few lost keep-alives), or half
// the disconnect timeout when that is shorter.
func iceSilence(disconnect time.Duration) time.Duration {
	return min(5*time.Second, disconnect/2)
}

func ipAllowed(allowed []netip.Prefix, ip net.IP) bool {
	if len(allowed) == 0 {
		return true
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	a = a.Unmap()
	for _, p := range allowed {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// NewPipeline creates an empty pipeline.
func (e *Engine) NewPipeline(name string) (media.Pipeline, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, media.ErrReleased
	}
	p := newPipeline(e, randid.New(), name)
	e.pipelines[p.id] = p
	e.log.Debug("pipeline created", "pipeline", p.id, "name", name)
	return p, nil
}

// Pipelines lists the live pipelines, oldest first.
func (e *Engine) Pipelines() []media.Pipeline {
	e.mu.Lock()
	ps := slices.Collect(maps.Values(e.pipelines))
	e.mu.Unlock()
	sort.Slice(ps, func(i, j int) bool { return ps[i].created.Before(ps[j].created) })
	out := make([]media.Pipeline, len(ps))
	for i, p := range ps {
		out[i] = p
	}
	return out
}

func (e *Engine) forget(p *Pipeline) {
	e.mu.Lock()
	delete(e.pipelines, p.id)
	e.mu.Unlock()
}

// Usage measures this process, which is the media engine.
func (e *Engine) Usage() media.Usage {
	s, err := e.sampler.Read()
	if err != nil {
		e.log.Warn("cannot measure process usage", "err", err)
		return media.Usage{}
	}
	return media.Usage{CPUPercent: s.CPUPercent, MemoryPercent: s.MemoryPercent, RSSBytes: s.RSSBytes}
}

// reportFailure runs f, an Events.Failed call, as one of the engine's
// failures. Once Close has begun none is started: everything is being
// released already.
func (e *Engine) reportFailure(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	e.failures.Go(f)
}

// Close releases every pipeline, stops the viewers' writers and closes the
// shared UDP and TCP ports.
func (e *Engine) Close() error {
	e.mu.Lock()
	e.closed = true
	ps := slices.Collect(maps.Values(e.pipelines))
	e.mu.Unlock()
	for _, p := range ps {
		p.Release()
	}
	e.failures.Wait()
	e.writers.close()
	err := e.closeICETCP()
	if e.udpMux != nil {
		if uerr := e.udpMux.Close(); err == nil {
			err = uerr
		}
	}
	return err
}
