// Package metrics exposes onair's state and activity to Prometheus at
// /metrics: how many rooms, viewers and media objects there are, the media
// engine's traffic, join latency, and what became of webhooks, recordings
// and refused broadcasts.
//
// Gauges and traffic counters are read from the domain and the media engine
// when Prometheus scrapes (a collector), so they never disagree with the
// truth; activity is counted as it happens through small methods that other
// parts call (Event, Connected, Webhook, Recording, Rejected). It owns its
// own registry (no global one) and changes nothing it reads.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/media"
)

// Domain is what metrics reads of the broadcast domain at each scrape.
type Domain interface {
	Counts() live.Counts
}

// Engine is what metrics reads of the media engine at each scrape.
type Engine interface {
	Traffic() media.Traffic
}

// Sources are read at each scrape. Any may be nil: its metrics are left out.
type Sources struct {
	Domain Domain
	Engine Engine
	// Usage is the media engine's last measured CPU and memory, and whether
	// there is one yet (alerts.Monitor.Usage: read, not measured again).
	Usage func() (media.Usage, bool)
	// Overloaded is non-nil while new broadcasts are refused.
	Overloaded func() error
	// WebhookQueue is the number of webhooks waiting or in flight.
	WebhookQueue func() int
	// HLS is the Low-Latency HLS tier's viewers and running muxers.
	HLS func() (viewers, muxers int)
}

// Recording outcomes, for Recording.
const (
	RecordingFinished     = "finished"      // the file was written and closed
	RecordingFailed       = "failed"        // recording stopped on an error
	RecordingUploaded     = "uploaded"      // the upload hook succeeded
	RecordingUploadFailed = "upload_failed" // the upload hook failed
)

// Metrics holds onair's registry and the instruments that count activity.
type Metrics struct {
	reg         *prometheus.Registry
	joinLatency *prometheus.HistogramVec
	events      *prometheus.CounterVec
	webhooks    *prometheus.CounterVec
	recordings  *prometheus.CounterVec
	rejections  *prometheus.CounterVec
}

// New makes the registry with the activity counters, the Go runtime's and
// the process's metrics. Watch adds the scrape-time state.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		joinLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "onair_join_latency_seconds",
			Help: "Time from a peer's SDP offer to its media connection (ICE and DTLS done), by role: a viewer's is how long it waits to watch.",
			// From a LAN (tens of ms) to a TURN relay on a bad network (seconds).
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30},
		}, []string{"role"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "onair_events_total",
			Help: "Lifecycle events: rooms started and finished, viewers joined and left, recordings finished; with the reason a viewer left or a room finished.",
		}, []string{"type", "reason"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "onair_webhooks_total",
			Help: "Webhook events by outcome: delivered (2xx), failed (every attempt failed, or refused), dropped (a queue was full, or shutdown).",
		}, []string{"event", "outcome"}),
		recordings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "onair_recordings_total",
			Help: "Recordings by outcome: finished, failed, uploaded, upload_failed.",
		}, []string{"outcome"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "onair_rejections_total",
			Help: "Requests refused by a limit or for want of a grant, by reason: overloaded (the media engine is over its hard CPU or memory limit), unauthorized, forbidden, session_rate, message_rate, room_full, … (README: Metrics).",
		}, []string{"reason"}),
	}
	m.reg.MustRegister(m.joinLatency, m.events, m.webhooks, m.recordings, m.rejections,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Series that exist from the start, so that rates and alerts on them
	// work before the first occurrence.
	for _, r := range []media.Role{media.Publisher, media.Subscriber} {
		m.joinLatency.WithLabelValues(roleName(r))
	}
	for _, t := range []live.EventType{live.EventRoomStarted, live.EventRoomFinished, live.EventViewerJoined,
		live.EventViewerLeft, live.EventRecordingFinished} {
		for _, o := range []string{"delivered", "failed", "dropped"} {
			m.webhooks.WithLabelValues(string(t), o)
		}
	}
	for _, o := range []string{RecordingFinished, RecordingFailed, RecordingUploaded, RecordingUploadFailed} {
		m.recordings.WithLabelValues(o)
	}
	m.rejections.WithLabelValues("overloaded")
	return m
}

// Watch adds the metrics read from src at each scrape. Call it once.
func (m *Metrics) Watch(src Sources) {
	m.reg.MustRegister(&state{src: src})
}

// Handler serves the metrics in Prometheus's text format (or OpenMetrics,
// if asked for).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	})
}

// Event counts a lifecycle event. It never blocks.
func (m *Metrics) Event(e live.Event) {
	m.events.WithLabelValues(string(e.Type), e.Reason).Inc()
}

// Connected records a peer's time from offer to media connected.
func (m *Metrics) Connected(role media.Role, took time.Duration) {
	m.joinLatency.WithLabelValues(roleName(role)).Observe(took.Seconds())
}

// Webhook counts what became of a webhook event (delivered, failed, dropped).
func (m *Metrics) Webhook(event live.EventType, outcome string) {
	m.webhooks.WithLabelValues(string(event), outcome).Inc()
}

// Recording counts a recording's outcome: RecordingFinished,
// RecordingFailed, RecordingUploaded or RecordingUploadFailed.
func (m *Metrics) Recording(outcome string) {
	m.recordings.WithLabelValues(outcome).Inc()
}

// Rejections makes the series of these rejection reasons exist from the
// start (at zero), so that rates and alerts on them work before the first.
func (m *Metrics) Rejections(reasons ...string) {
	for _, r := range reasons {
		m.rejections.WithLabelValues(r)
	}
}

// Rejected counts a request refused by a limit, e.g. "overloaded".
func (m *Metrics) Rejected(reason string) {
	m.rejections.WithLabelValues(reason).Inc()
}

func roleName(r media.Role) string {
	switch r {
	case media.Publisher:
		return "presenter"
	case media.Subscriber:
		return "viewer"
	}
	return r.String()
}
