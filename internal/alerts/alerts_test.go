package alerts_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/alerts"
	"github.com/onair-live/onair/internal/media"
)

// fakeEngine stands for the media engine, whose real CPU cannot be made to
// cross a threshold on demand.
type fakeEngine struct {
	measure func() (media.Usage, error)
}

func (f fakeEngine) MeasureUsage() (media.Usage, error) { return f.measure() }

// usage is a settable reading for fakeEngine.
type usage struct {
	mu  sync.Mutex
	u   media.Usage
	err error
}

func (u *usage) set(cpu, mem float64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.u, u.err = media.Usage{CPUPercent: cpu, MemoryPercent: mem}, nil
}

func (u *usage) fail(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.err = err
}

func (u *usage) engine() fakeEngine {
	return fakeEngine{measure: func() (media.Usage, error) {
		u.mu.Lock()
		defer u.mu.Unlock()
		return u.u, u.err
	}}
}

// clock is a fake time.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// chat is an alert webhook on 127.0.0.1 that keeps the texts it gets.
type chat struct {
	srv    *httptest.Server
	mu     sync.Mutex
	texts  []string
	status int
}

func newChat(t *testing.T) *chat {
	c := &chat{status: http.StatusOK}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil || len(body) != 1 || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("alert body %s (%s), want {\"text\": …}", raw, r.Header.Get("Content-Type"))
		}
		text, _ := body["text"].(string)
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.status == http.StatusOK {
			c.texts = append(c.texts, text)
		}
		w.WriteHeader(c.status)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// take returns the texts received since the last take.
func (c *chat) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.texts
	c.texts = nil
	return t
}

func (c *chat) setStatus(s int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status = s
}

type fixture struct {
	mon   *alerts.Monitor
	usage *usage
	clock *clock
	chat  *chat
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{usage: &usage{}, clock: &clock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}, chat: newChat(t)}
	f.mon = alerts.New(alerts.Config{URL: f.chat.srv.URL, Host: "media-1", Interval: 5 * time.Minute, Sustain: 2,
		CPUWarn: 80, CPUMax: 95, MemWarn: 70, MemMax: 90, Now: f.clock.Now,
		Logger: slog.New(slog.DiscardHandler)}, f.usage.engine())
	return f
}

// step sets the usage, samples, and returns what was posted.
func (f *fixture) step(cpu, mem float64) []string {
	f.usage.set(cpu, mem)
	f.mon.Sample()
	return f.chat.take()
}

func wantTexts(t *testing.T, when string, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: posted %q, want %d messages like %q", when, got, len(want), want)
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Fatalf("%s: posted %q, want it to contain %q", when, got[i], want[i])
		}
	}
}

// A threshold crossed (for Sustain samples) posts once, naming the host, the
// metric, the value and the threshold; the recovery posts once too.
func TestWarnAndRecover(t *testing.T) {
	f := newFixture(t)
	wantTexts(t, "idle", f.step(10, 10))
	wantTexts(t, "one busy sample", f.step(85, 10))
	wantTexts(t, "a busy sample alone", f.step(10, 10))
	wantTexts(t, "first of two", f.step(85, 10))
	wantTexts(t, "second of two", f.step(86.3, 10),
		"onair on media-1: CPU at 86.3%, over the warning threshold of 80%")
	for range 5 {
		wantTexts(t, "still busy", f.step(87, 10))
	}
	if err := f.mon.Overloaded(); err != nil {
		t.Errorf("overloaded at the warning level: %v", err)
	}
	f.clock.add(time.Minute)
	wantTexts(t, "first calm", f.step(20, 10))
	wantTexts(t, "calm", f.step(20, 10), "onair on media-1: CPU back to 20.0%, under the warning threshold of 80%")

	// Within the interval, the same condition is not posted again, nor its
	// recovery; after it, it is.
	f.step(90, 10)
	wantTexts(t, "busy again within the interval", f.step(90, 10))
	f.step(20, 10)
	wantTexts(t, "calm again", f.step(20, 10))
	f.step(90, 10)
	wantTexts(t, "busy again within the interval", f.step(90, 10))
	f.clock.add(5 * time.Minute)
	wantTexts(t, "still busy after the interval", f.step(90, 10), "CPU at 90.0%, over the warning threshold of 80%")

	// Memory is its own condition.
	wantTexts(t, "memory", append(f.step(90, 75), f.step(90, 75)...), "memory at 75.0%, over the warning threshold of 70%")
}

// Over the hard limit, the monitor says so (and why), and posts it; below,
// broadcasts are accepted again.
func TestHardLimit(t *testing.T) {
	f := newFixture(t)
	f.step(97, 10)
	if err := f.mon.Overloaded(); err != nil {
		t.Fatalf("overloaded after one sample: %v", err)
	}
	wantTexts(t, "over the limit", f.step(97.5, 10),
		"onair on media-1: CPU at 97.5%, over the hard limit of 95%: new broadcasts are refused")
	err := f.mon.Overloaded()
	if err == nil || !strings.Contains(err.Error(), "CPU at 97.5%, limit 95%") {
		t.Fatalf("Overloaded() = %v, want CPU named", err)
	}
	f.step(85, 10)
	wantTexts(t, "down to warning", f.step(85, 10),
		"CPU down to 85.0%, under the hard limit of 95%: new broadcasts are accepted again (still over the warning threshold of 80%)")
	if err := f.mon.Overloaded(); err != nil {
		t.Errorf("still overloaded: %v", err)
	}
	f.step(10, 95)
	wantTexts(t, "memory over the limit", f.step(10, 95),
		"CPU back to 10.0%, under the warning threshold of 80%", "memory at 95.0%, over the hard limit of 90%")
	if err := f.mon.Overloaded(); err == nil || !strings.Contains(err.Error(), "memory") {
		t.Errorf("Overloaded() = %v, want memory named", err)
	}
	if u, ok := f.mon.Usage(); !ok || u.MemoryPercent != 95 {
		t.Errorf("Usage() = %+v, %v", u, ok)
	}
}

// Failures of the media engine are posted at most once per interval, with
// the count of those held back; so is an engine that cannot be measured.
func TestEngineFailures(t *testing.T) {
	f := newFixture(t)
	f.usage.set(10, 10)
	for range 3 {
		f.mon.MediaFailed("cannot create a pipeline for room r1", errors.New("no capacity"))
	}
	f.mon.Sample()
	wantTexts(t, "three failures", f.chat.take(),
		"onair on media-1: media engine failure: cannot create a pipeline for room r1: no capacity")
	f.clock.add(5 * time.Minute)
	f.mon.MediaFailed("cannot create a viewer's endpoint in room r2", errors.New("boom"))
	f.mon.Sample()
	wantTexts(t, "after the interval", f.chat.take(), "in room r2: boom (2 more since the last message)")

	f.usage.fail(errors.New("no /proc"))
	f.mon.Sample()
	wantTexts(t, "unmeasurable", f.chat.take(), "cannot measure the media engine's CPU and memory: no /proc")
	f.mon.Sample()
	wantTexts(t, "still unmeasurable", f.chat.take())
	f.usage.set(10, 10)
	f.mon.Sample()
	wantTexts(t, "measured again", f.chat.take(), "can be measured again")
}

// An alert the webhook refused is posted again at the next sample.
func TestRepostAfterFailure(t *testing.T) {
	f := newFixture(t)
	f.chat.setStatus(http.StatusInternalServerError)
	f.step(99, 10)
	f.step(99, 10)
	f.chat.setStatus(http.StatusOK)
	wantTexts(t, "webhook back", f.step(99, 10), "over the hard limit")
	if f.mon.Overloaded() == nil {
		t.Error("not overloaded while the webhook was down")
	}
}

// Run samples on its own until its context ends.
func TestRun(t *testing.T) {
	u := &usage{}
	u.set(99, 10)
	c := newChat(t)
	mon := alerts.New(alerts.Config{URL: c.srv.URL, SampleEvery: time.Millisecond, Sustain: 2, CPUMax: 95,
		Logger: slog.New(slog.DiscardHandler)}, u.engine())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		mon.Run(ctx)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for mon.Overloaded() == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if mon.Overloaded() == nil {
		t.Fatal("Run did not sample")
	}
	if got := c.take(); len(got) != 1 || !strings.Contains(got[0], "CPU at 99.0%") {
		t.Errorf("posted %q", got)
	}
}
