package metrics_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/media"
	"github.com/onair-live/onair/internal/metrics"
)

// fakeDomain and fakeEngine stand for the domain and the media engine.
type fakeDomain struct{ counts func() live.Counts }

func (f fakeDomain) Counts() live.Counts { return f.counts() }

type fakeEngine struct{ traffic func() media.Traffic }

func (f fakeEngine) Traffic() media.Traffic { return f.traffic() }

// scrape gets /metrics from h and parses it as Prometheus does.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value is the value of the series of name whose labels include labels
// (name=value pairs), and whether there is one.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func TestExposition(t *testing.T) {
	m := metrics.New()
	m.Watch(metrics.Sources{
		Domain: fakeDomain{counts: func() live.Counts {
			return live.Counts{Rooms: 2, Viewers: 5, Sessions: 7, Pipelines: 2, Endpoints: 8}
		}},
		Engine: fakeEngine{traffic: func() media.Traffic {
			return media.Traffic{PacketsIn: 100, PacketsOut: 450, BytesIn: 1e5, BytesOut: 4.5e5, PacketsDropped: 3, NACKs: 4, PLIs: 6, LayerSwitches: 5, PacketsDuplicate: 7}
		}},
		Usage:        func() (media.Usage, bool) { return media.Usage{CPUPercent: 12.5, MemoryPercent: 3}, true },
		Overloaded:   func() error { return errors.New("CPU") },
		WebhookQueue: func() int { return 9 },
	})
	m.Event(live.Event{Type: live.EventViewerLeft, Reason: live.ReasonDropped})
	m.Event(live.Event{Type: live.EventViewerLeft, Reason: live.ReasonDropped})
	m.Event(live.Event{Type: live.EventRoomStarted})
	m.Connected(media.Subscriber, 300*time.Millisecond)
	m.Connected(media.Subscriber, 2*time.Second)
	m.Webhook(live.EventRoomStarted, "delivered")
	m.Recording(metrics.RecordingFinished)
	m.Rejected("overloaded")

	fams := scrape(t, m.Handler())
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"onair_rooms", nil, 2},
		{"onair_viewers", nil, 5},
		{"onair_sessions", nil, 7},
		{"onair_media_pipelines", nil, 2},
		{"onair_media_endpoints", nil, 8},
		{"onair_media_packets_in_total", nil, 100},
		{"onair_media_packets_out_total", nil, 450},
		{"onair_media_bytes_in_total", nil, 1e5},
		{"onair_media_bytes_out_total", nil, 4.5e5},
		{"onair_media_packets_dropped_total", nil, 3},
		{"onair_media_nacks_total", nil, 4},
		{"onair_media_plis_total", nil, 6},
		{"onair_media_layer_switches_total", nil, 5},
		{"onair_media_packets_duplicate_total", nil, 7},
		{"onair_media_cpu_percent", nil, 12.5},
		{"onair_media_memory_percent", nil, 3},
		{"onair_media_overloaded", nil, 1},
		{"onair_webhook_queue", nil, 9},
		{"onair_events_total", []string{"type", "viewer.left", "reason", "dropped"}, 2},
		{"onair_events_total", []string{"type", "room.started"}, 1},
		{"onair_join_latency_seconds", []string{"role", "viewer"}, 2},
		{"onair_join_latency_seconds", []string{"role", "presenter"}, 0},
		{"onair_webhooks_total", []string{"event", "room.started", "outcome", "delivered"}, 1},
		{"onair_webhooks_total", []string{"event", "viewer.left", "outcome", "dropped"}, 0},
		{"onair_recordings_total", []string{"outcome", "finished"}, 1},
		{"onair_recordings_total", []string{"outcome", "upload_failed"}, 0},
		{"onair_rejections_total", []string{"reason", "overloaded"}, 1},
	} {
		if got, ok := value(fams, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if _, ok := value(fams, "go_goroutines"); !ok {
		t.Error("no Go runtime metrics")
	}
	if _, ok := value(fams, "process_resident_memory_bytes"); !ok {
		t.Error("no process metrics")
	}
}

// Without sources, only activity and runtime metrics are shown.
func TestNoSources(t *testing.T) {
	m := metrics.New()
	m.Watch(metrics.Sources{})
	fams := scrape(t, m.Handler())
	if _, ok := value(fams, "onair_rooms"); ok {
		t.Error("onair_rooms without a domain")
	}
	if _, ok := value(fams, "onair_rejections_total", "reason", "overloaded"); !ok {
		t.Error("no onair_rejections_total")
	}
}
