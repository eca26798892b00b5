package hooks_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/hooks"
	"github.com/onair-live/onair/internal/live"
)

const (
	secret  = "s3cret"
	timeout = 20 * time.Second // waits only; a healthy run meets them at once
)

// delivery is one request the receiver got.
type delivery struct {
	header http.Header
	raw    []byte
	body   hooks.Body
}

// receiver is a webhook endpoint on 127.0.0.1. respond decides each
// request's status (200 when nil).
type receiver struct {
	srv     *httptest.Server
	respond func(d delivery) int

	mu   sync.Mutex
	got  []delivery
	kick chan struct{}
}

func newReceiver(t *testing.T, respond func(delivery) int) *receiver {
	r := &receiver{respond: respond, kick: make(chan struct{}, 1)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		raw, err := io.ReadAll(req.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		d := delivery{header: req.Header.Clone(), raw: raw}
		if err := json.Unmarshal(raw, &d.body); err != nil {
			t.Errorf("body is not JSON: %v: %s", err, raw)
		}
		r.mu.Lock()
		r.got = append(r.got, d)
		r.mu.Unlock()
		select {
		case r.kick <- struct{}{}:
		default:
		}
		status := http.StatusOK
		if r.respond != nil {
			status = r.respond(d)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// waitFor waits until cond holds for what was received.
func (r *receiver) waitFor(t *testing.T, what string, cond func([]delivery) bool) []delivery {
	t.Helper()
	deadline := time.After(timeout)
	for {
		got := r.deliveries()
		if cond(got) {
			return got
		}
		select {
		case <-r.kick:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("waiting for %s: received %d requests", what, len(got))
		}
	}
}

// outcomes counts what the sender reports.
type outcomes struct {
	mu sync.Mutex
	n  map[hooks.Outcome]int
}

func (o *outcomes) add(_ live.EventType, x hooks.Outcome) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[hooks.Outcome]int{}
	}
	o.n[x]++
}

func (o *outcomes) get(x hooks.Outcome) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[x]
}

// newSender makes a sender to r, closed when the test ends.
func newSender(t *testing.T, r *receiver, o *outcomes, tune func(*hooks.Config)) *hooks.Sender {
	cfg := hooks.Config{URL: r.srv.URL + "/hook", Secret: secret, MinBackoff: time.Millisecond,
		MaxBackoff: 20 * time.Millisecond, OnOutcome: o.add, Logger: slog.New(slog.DiscardHandler)}
	if tune != nil {
		tune(&cfg)
	}
	s := hooks.New(cfg)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// Each delivery carries the event, an id, a time and a signature that a
// receiver can check with nothing but the secret and the raw body.
func TestSignedBody(t *testing.T) {
	t.Parallel()
	checkGoroutines(t)
	r := newReceiver(t, nil)
	o := &outcomes{}
	s := newSender(t, r, o, nil)
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	s.Send(live.Event{Type: live.EventViewerLeft, Time: at, RoomID: "r1", User: "v@x", Reason: live.ReasonDropped, Viewers: 2})
	s.Send(live.Event{Type: live.EventRecordingFinished, RoomID: "r1", Recording: &live.Recording{
		Path: "/rec/r1.webm", Bytes: 1234, Duration: 1500 * time.Millisecond, Codecs: []string{"VP8", "opus"}}})
	got := r.waitFor(t, "two deliveries", func(d []delivery) bool { return len(d) == 2 && o.get(hooks.Delivered) == 2 })

	for _, d := range got {
		// The recipe of the README, by hand.
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(d.raw)
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		if sig := d.header.Get("X-Onair-Signature"); sig != want || !hooks.Verify(secret, d.raw, sig) {
			t.Errorf("signature %q, want %q", sig, want)
		}
		if hooks.Verify("other", d.raw, d.header.Get("X-Onair-Signature")) {
			t.Error("the signature verifies with another secret")
		}
		if d.header.Get("X-Onair-Event") != string(d.body.Type) || d.header.Get("X-Onair-Delivery") != d.body.ID ||
			d.header.Get("X-Onair-Attempt") != "1" || d.header.Get("Content-Type") != "application/json" {
			t.Errorf("headers %v for %s", d.header, d.raw)
		}
		if len(d.body.ID) != 32 {
			t.Errorf("id %q, want 128 random bits in hex", d.body.ID)
		}
	}
	if got[0].body.ID == got[1].body.ID {
		t.Error("two events have the same id")
	}

	var left map[string]any
	if err := json.Unmarshal(got[0].raw, &left); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"id": got[0].body.ID, "type": "viewer.left", "time": "2025-03-01T11:00:00Z",
		"roomId": "r1", "viewer": "v@x", "reason": "dropped", "viewers": 2.0}
	if fmt.Sprint(left) != fmt.Sprint(want) {
		t.Errorf("body %s, want %v", got[0].raw, want)
	}
	rec := got[1].body
	if rec.Type != live.EventRecordingFinished || rec.Recording == nil || rec.Recording.Path != "/rec/r1.webm" ||
		rec.Recording.Bytes != 1234 || rec.Recording.DurationMS != 1500 || len(rec.Recording.Codecs) != 2 ||
		rec.Time.IsZero() || rec.Viewers != nil {
		t.Errorf("recording body %s", got[1].raw)
	}
	if _, err := time.Parse(time.RFC3339, fmt.Sprint(left["time"])); err != nil {
		t.Errorf("time is not RFC 3339: %v", err)
	}
}

// Events of one room arrive in the order they were sent, even when many
// rooms send at once and the receiver fails some attempts.
func TestOrderPerRoom(t *testing.T) {
	t.Parallel()
	checkGoroutines(t)
	const rooms, perRoom = 12, 40
	var mu sync.Mutex
	tries := map[string]int{}
	r := newReceiver(t, func(d delivery) int {
		mu.Lock()
		defer mu.Unlock()
		tries[d.body.ID]++
		if len(d.body.ID) > 0 && d.body.ID[0] < '4' && tries[d.body.ID] == 1 {
			return http.StatusInternalServerError // a quarter of the events fail once
		}
		return http.StatusOK
	})
	o := &outcomes{}
	s := newSender(t, r, o, func(c *hooks.Config) { c.Concurrency = 4 })
	var wg sync.WaitGroup
	for i := range rooms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			room := fmt.Sprintf("room%d", i)
			for n := range perRoom {
				s.Send(live.Event{Type: live.EventViewerJoined, RoomID: room, User: strconv.Itoa(n), Viewers: n})
			}
		}()
	}
	wg.Wait()
	r.waitFor(t, "every event", func([]delivery) bool { return o.get(hooks.Delivered) == rooms*perRoom })

	// Per room, the requests (retries included) must go 0, 1, 2…: the same
	// event again only after a failure, never one ahead of another.
	last := map[string]int{}
	retried := 0
	for _, d := range r.deliveries() {
		n, _ := strconv.Atoi(d.body.Viewer)
		prev, seen := last[d.body.RoomID]
		if d.header.Get("X-Onair-Attempt") != "1" {
			retried++
		}
		if (!seen && n != 0) || (seen && n != prev && n != prev+1) {
			t.Fatalf("room %s: event %d arrived after event %d", d.body.RoomID, n, prev)
		}
		last[d.body.RoomID] = n
	}
	for i := range rooms {
		if n := last[fmt.Sprintf("room%d", i)]; n != perRoom-1 {
			t.Errorf("room%d: last event %d, want %d", i, n, perRoom-1)
		}
	}
	if retried == 0 {
		t.Error("no event was retried: the test did not test order under retries")
	}
	if s.Queued() != 0 {
		t.Errorf("%d still queued", s.Queued())
	}
}

// A 500 is retried with the same id and body; a 400 is not.
func TestRetry(t *testing.T) {
	t.Parallel()
	checkGoroutines(t)
	r := newReceiver(t, func(d delivery) int {
		switch {
		case d.body.RoomID == "refused":
			return http.StatusBadRequest
		case d.header.Get("X-Onair-Attempt") == "1":
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	o := &outcomes{}
	s := newSender(t, r, o, nil)
	s.Send(live.Event{Type: live.EventRoomStarted, RoomID: "r1", Presenter: "p@x"})
	got := r.waitFor(t, "a retry", func(d []delivery) bool { return len(d) == 2 })
	if got[0].body.ID != got[1].body.ID || string(got[0].raw) != string(got[1].raw) ||
		got[1].header.Get("X-Onair-Attempt") != "2" || got[1].header.Get("X-Onair-Delivery") != got[0].body.ID {
		t.Errorf("the retry differs: %s %v, then %s %v", got[0].raw, got[0].header, got[1].raw, got[1].header)
	}
	r.waitFor(t, "the outcome", func([]delivery) bool { return o.get(hooks.Delivered) == 1 })

	s.Send(live.Event{Type: live.EventRoomStarted, RoomID: "refused"})
	r.waitFor(t, "the refusal", func([]delivery) bool { return o.get(hooks.Failed) == 1 })
	if n := len(r.deliveries()); n != 3 {
		t.Errorf("%d requests, want 3 (a 400 is not retried)", n)
	}
}

// A receiver that always fails is tried MaxAttempts times, then the event
// is counted as failed and the room's next event goes out.
func TestGiveUp(t *testing.T) {
	t.Parallel()
	checkGoroutines(t)
	r := newReceiver(t, func(d delivery) int {
		if d.body.Type == live.EventRoomStarted {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	o := &outcomes{}
	s := newSender(t, r, o, func(c *hooks.Config) { c.MaxAttempts = 3 })
	s.Send(live.Event{Type: live.EventRoomStarted, RoomID: "r1"})
	s.Send(live.Event{Type: live.EventRoomFinished, RoomID: "r1"})
	got := r.waitFor(t, "the next event", func([]delivery) bool { return o.get(hooks.Delivered) == 1 })
	if len(got) != 4 || got[2].header.Get("X-Onair-Attempt") != "3" || got[3].body.Type != live.EventRoomFinished {
		t.Errorf("%d requests, want 3 attempts of room.started then room.finished", len(got))
	}
	if o.get(hooks.Failed) != 1 {
		t.Errorf("failed %d, want 1", o.get(hooks.Failed))
	}
}

// A receiver that hangs costs the sender of events nothing: Send returns at
// once, a full queue drops (and counts) rather than waits, and Close gives
// up at its deadline.
func TestHungReceiverDoesNotBlock(t *testing.T) {
	t.Parallel()
	checkGoroutines(t)
	release := make(chan struct{})
	r := newReceiver(t, func(delivery) int { <-release; return http.StatusOK })
	t.Cleanup(func() { close(release) }) // before the receiver closes
	o := &outcomes{}
	s := newSender(t, r, o, func(c *hooks.Config) {
		c.RoomQueue, c.TotalQueue, c.Timeout = 4, 100, time.Hour
	})
	s.Send(live.Event{Type: live.EventRoomStarted, RoomID: "r1"})
	r.waitFor(t, "the first request", func(d []delivery) bool { return len(d) == 1 })

	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := range 10 {
			s.Send(live.Event{Type: live.EventViewerJoined, RoomID: "r1", User: strconv.Itoa(i)})
		}
		for i := range 200 {
			s.Send(live.Event{Type: live.EventRoomStarted, RoomID: fmt.Sprintf("other%d", i)})
		}
	}()
	select {
	case <-sent:
	case <-time.After(timeout):
		t.Fatal("Send blocked on a hung receiver")
	}
	// r1: 1 in flight, 4 queued, 6 dropped; then other rooms up to 100 in
	// all: 95 queued, 105 dropped.
	if n := o.get(hooks.Dropped); n != 6+105 {
		t.Errorf("%d dropped, want %d", n, 6+105)
	}
	if q := s.Queued(); q != 100 {
		t.Errorf("%d queued, want the bound of 100", q)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Close(ctx); err == nil {
		t.Error("Close reported every event delivered")
	}
	if d := time.Since(start); d > timeout {
		t.Errorf("Close took %s", d)
	}
	if got := o.get(hooks.Dropped) + o.get(hooks.Delivered) + o.get(hooks.Failed); got != 211 {
		t.Errorf("%d outcomes for 211 events", got)
	}
	s.Send(live.Event{Type: live.EventRoomStarted, RoomID: "late"})
	if got := o.get(hooks.Dropped) + o.get(hooks.Delivered) + o.get(hooks.Failed); got != 212 {
		t.Errorf("an event sent after Close was not dropped")
	}
}

// Close waits for queued events to be delivered.
func TestCloseFlushes(t *testing.T) {
	t.Parallel()
	checkGoroutines(t)
	r := newReceiver(t, nil)
	o := &outcomes{}
	s := newSender(t, r, o, nil)
	for i := range 20 {
		s.Send(live.Event{Type: live.EventViewerJoined, RoomID: fmt.Sprint("r", i%3), User: strconv.Itoa(i)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := o.get(hooks.Delivered); n != 20 || len(r.deliveries()) != 20 {
		t.Errorf("%d delivered, %d received, want 20", n, len(r.deliveries()))
	}
}

// A webhook URL often carries a token: errors are logged without it.
func TestLogsWithoutURL(t *testing.T) {
	t.Parallel()
	checkGoroutines(t)
	var logs syncBuffer
	o := &outcomes{}
	s := hooks.New(hooks.Config{URL: "http://127.0.0.1:1/hooks/T0KEN", Secret: secret, MaxAttempts: 2,
		MinBackoff: time.Millisecond, OnOutcome: o.add, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	s.Send(live.Event{Type: live.EventRoomStarted, RoomID: "r1"})
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if o.get(hooks.Failed) != 1 {
		t.Errorf("outcomes %v, want one failed", o.n)
	}
	if out := logs.String(); strings.Contains(out, "T0KEN") || !strings.Contains(out, "webhook failed") {
		t.Errorf("log:\n%s\nwant the failure, without the URL's token", out)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
