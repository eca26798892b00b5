package metrics

import "github.com/prometheus/client_golang/prometheus"

// TURN counts the embedded TURN server's allocations and refusals.
type TURN struct {
	allocations prometheus.Counter
	refusals    *prometheus.CounterVec
}

// TURN registers the embedded TURN server's metrics, with the refusal
// reasons it may report and active, read at each scrape, for the relays
// held now. Call it once.
func (m *Metrics) TURN(reasons []string, active func() int) *TURN {
	t := &TURN{
		allocations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "onair_turn_allocations_total",
			Help: "Relays allocated by the embedded TURN server.",
		}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "onair_turn_refusals_total",
			Help: "Requests and packets the embedded TURN server refused, by reason: auth (wrong credential), expired, quota (allocations per user), peer (not this node's address), private (this node's private address, not allowed), port (not a media port), tcp_relay.",
		}, []string{"reason"}),
	}
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "onair_turn_allocations",
		Help: "Relays the embedded TURN server holds now.",
	}, func() float64 { return float64(active()) })
	m.reg.MustRegister(t.allocations, t.refusals, held)
	for _, r := range reasons {
		t.refusals.WithLabelValues(r)
	}
	return t
}

// Allocated counts a relay allocated. It never blocks.
func (t *TURN) Allocated() { t.allocations.Inc() }

// Refused counts a refusal by reason. It never blocks.
func (t *TURN) Refused(reason string) { t.refusals.WithLabelValues(reason).Inc() }
