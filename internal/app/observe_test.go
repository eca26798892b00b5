package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/hooks"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/testpeer"
)

const hookSecret = "webhook secret"

// hookReceiver is an operator's webhook endpoint on 127.0.0.1: it checks
// each delivery's signature and keeps the bodies in arrival order. Until
// released (when hang is set), it does not answer.
type hookReceiver struct {
	t       *testing.T
	srv     *httptest.Server
	release chan struct{}
	answer  func() // stops hanging

	mu     sync.Mutex
	bodies []hooks.Body
	// waiting counts requests received but not yet answered.
	waiting int
}

func newHookReceiver(t *testing.T, hang bool) *hookReceiver {
	r := &hookReceiver{t: t, release: make(chan struct{})}
	r.answer = sync.OnceFunc(func() { close(r.release) })
	if !hang {
		r.answer()
	}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		raw, _ := io.ReadAll(req.Body)
		if !hooks.Verify(hookSecret, raw, req.Header.Get("X-Onair-Signature")) {
			t.Errorf("bad signature %q on %s", req.Header.Get("X-Onair-Signature"), raw)
		}
		var b hooks.Body
		if err := json.Unmarshal(raw, &b); err != nil {
			t.Errorf("webhook body %s: %v", raw, err)
		}
		r.mu.Lock()
		r.bodies = append(r.bodies, b)
		r.waiting++
		r.mu.Unlock()
		<-r.release
		r.mu.Lock()
		r.waiting--
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	t.Cleanup(r.answer) // if the test failed before it did
	return r
}

func (r *hookReceiver) configure(c *config.Config) {
	c.WebhookURL, c.WebhookSecret = r.srv.URL+"/onair", hookSecret
}

// events returns "type room user reason" for each delivery so far.
func (r *hookReceiver) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.bodies {
		out = append(out, strings.Join(strings.Fields(fmt.Sprintf("%s %s %s %s", b.Type, b.RoomID, b.Viewer, b.Reason)), " "))
	}
	return out
}

func (r *hookReceiver) hung() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.waiting
}

// waitEvents waits for n deliveries and returns them.
func (r *hookReceiver) waitEvents(t *testing.T, n int) []string {
	t.Helper()
	if !testpeer.Eventually(timeout, func() bool { return len(r.events()) >= n }) {
		t.Fatalf("webhooks: got %q, want %d", r.events(), n)
	}
	return r.events()
}

// A broadcast's lifecycle reaches the webhook receiver, signed and in
// order, with the reason each viewer left.
func TestWebhooksOfABroadcast(t *testing.T) {
	hr := newHookReceiver(t, false)
	srv := testpeer.StartServer(t, hr.configure)
	const room = "hooks@example.com"
	testpeer.MustPresenter(t, srv, room, room, testpeer.PresenterOptions{})
	leaver := testpeer.MustViewer(t, srv, "leaver@example.com", room, testpeer.ViewerOptions{})
	dropper := testpeer.MustViewer(t, srv, "dropper@example.com", room, testpeer.ViewerOptions{})
	stayer := testpeer.MustViewer(t, srv, "stayer@example.com", room, testpeer.ViewerOptions{})
	wantMedia(t, stayer, 10)

	wantStatus(t, srv.REST.Leave(leaver.Email), http.StatusNoContent)
	waitRoomCount(t, srv, room, "2")
	dropper.Drop()
	waitRoomCount(t, srv, room, "1")
	wantStatus(t, srv.REST.EndRoom(room), http.StatusNoContent)

	got := hr.waitEvents(t, 8)
	want := []string{
		"room.started " + room,
		"viewer.joined " + room + " leaver@example.com",
		"viewer.joined " + room + " dropper@example.com",
		"viewer.joined " + room + " stayer@example.com",
		"viewer.left " + room + " leaver@example.com leave",
		"viewer.left " + room + " dropper@example.com dropped",
		"viewer.left " + room + " stayer@example.com ended",
		"room.finished " + room + " ended",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("webhooks:\n got %q\nwant %q", got, want)
	}
	hr.mu.Lock()
	first := hr.bodies[0]
	hr.mu.Unlock()
	if first.Title != "title of "+room || first.Presenter != room || first.ID == "" || first.Time.IsZero() {
		t.Errorf("room.started body %+v", first)
	}
}

// A webhook receiver that never answers delays nothing: rooms are created,
// joined, left and ended while it hangs.
func TestHungWebhookReceiver(t *testing.T) {
	hr := newHookReceiver(t, true)
	srv := testpeer.StartServer(t, hr.configure)
	for i := range 3 {
		room := fmt.Sprintf("hang%d@example.com", i)
		wantStatus(t, srv.REST.CreateRoom(room, room, "t", "https://example.com/p.png"), http.StatusCreated)
		wantStatus(t, srv.REST.Join("v"+room, room), http.StatusCreated)
		wantStatus(t, srv.REST.Leave("v"+room), http.StatusNoContent)
		wantStatus(t, srv.REST.EndRoom(room), http.StatusNoContent)
	}
	// One room.started per room reached the receiver, and hangs there; the
	// rest wait their turn behind it.
	if !testpeer.Eventually(timeout, func() bool { return hr.hung() == 3 }) {
		t.Fatalf("%d requests hung at the receiver, want 3", hr.hung())
	}
	if got := hr.events(); len(got) != 3 {
		t.Errorf("deliveries while the receiver hung: %q, want the three room.started", got)
	}
	srv.WaitCounts(t, timeout, live.Counts{})
	// Once it answers, every event arrives.
	hr.answer()
	hr.waitEvents(t, 12)
}

// /metrics, scraped after a real broadcast, tells the truth: the room, its
// viewers and endpoints, the packets that flowed, join latency; and after
// the end, nothing live but the traffic counted.
func TestMetricsOfABroadcast(t *testing.T) {
	srv := testpeer.StartServer(t, nil)
	const room = "metrics@example.com"
	testpeer.MustPresenter(t, srv, room, room, testpeer.PresenterOptions{})
	v1 := testpeer.MustViewer(t, srv, "m1@example.com", room, testpeer.ViewerOptions{})
	v2 := testpeer.MustViewer(t, srv, "m2@example.com", room, testpeer.ViewerOptions{})
	wantMedia(t, v1, 30)
	wantMedia(t, v2, 30)

	m := scrapeMetrics(t, srv)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"onair_rooms", nil, 1},
		{"onair_viewers", nil, 2},
		{"onair_sessions", nil, 3},
		{"onair_media_pipelines", nil, 1},
		{"onair_media_endpoints", nil, 3},
		{"onair_events_total", []string{"type", "room.started"}, 1},
		{"onair_events_total", []string{"type", "viewer.joined"}, 2},
		{"onair_join_latency_seconds", []string{"role", "presenter"}, 1},
		{"onair_join_latency_seconds", []string{"role", "viewer"}, 2},
		{"onair_media_overloaded", nil, 0},
	} {
		if got, ok := metricValue(m, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	out, _ := metricValue(m, "onair_media_packets_out_total")
	in, _ := metricValue(m, "onair_media_packets_in_total")
	bytesOut, _ := metricValue(m, "onair_media_bytes_out_total")
	if out <= 0 || in <= 0 || bytesOut <= out*12 {
		t.Errorf("packets in %v, out %v, bytes out %v: want media counted", in, out, bytesOut)
	}

	wantStatus(t, srv.REST.EndRoom(room), http.StatusNoContent)
	srv.WaitCounts(t, timeout, live.Counts{})
	m = scrapeMetrics(t, srv)
	for _, name := range []string{"onair_rooms", "onair_viewers", "onair_media_pipelines", "onair_media_endpoints"} {
		if got, _ := metricValue(m, name); got != 0 {
			t.Errorf("after the end, %s = %v, want 0", name, got)
		}
	}
	if after, _ := metricValue(m, "onair_media_packets_out_total"); after < out {
		t.Errorf("packets out went down from %v to %v when the endpoints were released", out, after)
	}
	if got, _ := metricValue(m, "onair_events_total", "type", "room.finished", "reason", "ended"); got != 1 {
		t.Errorf("room.finished ended = %v, want 1", got)
	}
}

// Over the hard limit (here memory, which the test can set below what any
// process uses), new broadcasts get 503 with the protocol's error body, the
// alert webhook hears of it, and metrics count the refusal.
func TestOverloadedServerRefusesBroadcasts(t *testing.T) {
	var mu sync.Mutex
	var texts []string
	chat := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Text string `json:"text"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Errorf("alert body: %v", err)
		}
		mu.Lock()
		texts = append(texts, body.Text)
		mu.Unlock()
	}))
	t.Cleanup(chat.Close)
	srv := testpeer.StartServer(t, func(c *config.Config) {
		c.AlertWebhookURL = chat.URL
		c.AlertSampleInterval = 10 * time.Millisecond
		c.AlertCPUWarn, c.AlertCPUMax = 0, 0
		c.AlertMemWarn, c.AlertMemMax = 0, 0.0001
	})
	var r testpeer.Response
	if !testpeer.Eventually(timeout, func() bool {
		r = srv.REST.CreateRoom("busy@example.com", "busy", "t", "https://example.com/p.png")
		return r.Status == http.StatusServiceUnavailable
	}) {
		t.Fatalf("POST /room/live: %s, want 503 once the memory limit is crossed", r)
	}
	wantAPIError(t, r, http.StatusServiceUnavailable, "UNAVAILABLE", 5030, "The server cannot take this request now.")
	if msg := r.APIError().Message; !strings.Contains(msg, "memory") || !strings.Contains(msg, "limit 0.0001%") {
		t.Errorf("message %q: want the memory limit named", msg)
	}
	if !testpeer.Eventually(timeout, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(texts) > 0
	}) {
		t.Fatal("no alert posted")
	}
	mu.Lock()
	if len(texts) != 1 || !strings.Contains(texts[0], "memory at") || !strings.Contains(texts[0], "over the hard limit of 0.0001%") {
		t.Errorf("alerts %q", texts)
	}
	mu.Unlock()
	m := scrapeMetrics(t, srv)
	if got, _ := metricValue(m, "onair_rejections_total", "reason", "overloaded"); got < 1 {
		t.Errorf("onair_rejections_total{reason=overloaded} = %v", got)
	}
	if got, _ := metricValue(m, "onair_media_overloaded"); got != 1 {
		t.Errorf("onair_media_overloaded = %v", got)
	}
}

// With -metrics=false there is no /metrics.
func TestMetricsOff(t *testing.T) {
	srv := testpeer.StartServer(t, func(c *config.Config) { c.Metrics = false })
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	resp, err := c.Get(strings.TrimSuffix(srv.URL, srv.Config.BasePath) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK || strings.Contains(string(body), "onair_rooms") {
		t.Errorf("GET /metrics with metrics off: %s %.200s", resp.Status, body)
	}
}

// scrapeMetrics gets /metrics and parses it as Prometheus does.
func scrapeMetrics(t *testing.T, srv *testpeer.Server) map[string]*dto.MetricFamily {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	resp, err := c.Get(strings.TrimSuffix(srv.URL, srv.Config.BasePath) + "/metrics")
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

// metricValue is the value of name's series whose labels include labels
// (name, value pairs): a gauge's or counter's value, a histogram's count.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
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
