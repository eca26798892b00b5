package sfu

import (
	"sync"
	"time"

	"github.com/onair-live/onair/internal/media"
)

// engineStats keeps what outlives an endpoint: the counters of released
// endpoints, so that the engine's totals only grow. The per-packet path
// counts into its own endpoint only; totals are summed when asked for.
type engineStats struct {
	// mu makes an endpoint's move from its pipeline to retired one step, as
	// seen by Traffic: never counted twice, never missing.
	mu      sync.Mutex
	retired media.Traffic
}

func addStats(t *media.Traffic, s media.EndpointStats) {
	t.PacketsIn += s.PacketsIn
	t.PacketsOut += s.PacketsOut
	t.BytesIn += s.BytesIn
	t.BytesOut += s.BytesOut
	t.PacketsDropped += s.PacketsDropped
	t.NACKs += s.NACKs
	t.PLIs += s.PLIs
	t.LayerSwitches += s.LayerSwitches
	t.PacketsDuplicate += s.PacketsDuplicate
}

// retire adds a released endpoint's counters to the engine's and takes it
// out of its pipeline.
func (e *Engine) retire(ep *Endpoint) {
	e.stats.mu.Lock()
	defer e.stats.mu.Unlock()
	addStats(&e.stats.retired, ep.Stats())
	ep.p.forget(ep)
}

// Traffic sums the counters of every endpoint the engine has had, released
// ones included. For metrics: each figure only grows.
func (e *Engine) Traffic() media.Traffic {
	e.stats.mu.Lock()
	defer e.stats.mu.Unlock()
	t := e.stats.retired
	for _, p := range e.Pipelines() {
		for _, ep := range p.Endpoints() {
			addStats(&t, ep.Stats())
		}
	}
	return t
}

// MeasureUsage is Usage, with the error when the process cannot be measured
// (for alerts, which report it).
func (e *Engine) MeasureUsage() (media.Usage, error) {
	s, err := e.sampler.Read()
	if err != nil {
		return media.Usage{}, err
	}
	return media.Usage{CPUPercent: s.CPUPercent, MemoryPercent: s.MemoryPercent, RSSBytes: s.RSSBytes}, nil
}

// connected reports an endpoint's first connection: the time from its offer
// to its media flowing (ICE and DTLS done), to Config.OnConnect.
func (e *Engine) connected(role media.Role, took time.Duration) {
	if e.cfg.OnConnect != nil {
		e.cfg.OnConnect(role, took)
	}
}
