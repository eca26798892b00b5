// Package hooks delivers the broadcast's lifecycle events (live.Event) to an
// operator's webhook URL: JSON bodies signed with an HMAC of a shared secret,
// in order per room, retried with backoff.
//
// It owns its queues, its delivery goroutines and its HTTP client. It never
// blocks the caller: Send queues and returns, and drops (counted and logged)
// when a bounded queue is full. It knows nothing of rooms beyond the events.
package hooks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/waitgroup"
)

// The headers of a delivery.
const (
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256 of the raw body,
	// keyed with the configured secret.
	HeaderSignature = "X-Onair-Signature"
	// HeaderEvent is the event's type, e.g. "viewer.left".
	HeaderEvent = "X-Onair-Event"
	// HeaderDelivery is the event's id: the same on every attempt, so that a
	// receiver can drop a retry of what it already has.
	HeaderDelivery = "X-Onair-Delivery"
	// HeaderAttempt counts attempts of one delivery, from 1.
	HeaderAttempt = "X-Onair-Attempt"
)

// Outcome is what became of one event.
type Outcome string

const (
	Delivered Outcome = "delivered" // the receiver answered 2xx
	Failed    Outcome = "failed"    // every attempt failed, or the receiver refused it (4xx)
	Dropped   Outcome = "dropped"   // never sent: a queue was full, or shutdown's deadline passed
)

// Config tunes a Sender. Zero values take the defaults.
type Config struct {
	URL    string
	Secret string
	// Timeout bounds one HTTP request (default 5s).
	Timeout time.Duration
	// MaxAttempts bounds the attempts of one event (default 6).
	MaxAttempts int
	// MinBackoff is the wait after the first failure; it doubles after each
	// one, up to MaxBackoff, with random jitter (defaults 500ms and 30s).
	MinBackoff, MaxBackoff time.Duration
	// RoomQueue bounds the events waiting per room (default 256), and
	// TotalQueue those waiting overall (default 10000).
	RoomQueue, TotalQueue int
	// Concurrency bounds the requests in flight at once (default 16).
	Concurrency int
	// FlushTimeout bounds how long Close waits for queued events (default 5s).
	FlushTimeout time.Duration
	// OnOutcome, if set, counts outcomes (metrics). It must not block.
	OnOutcome func(live.EventType, Outcome)
	Logger    *slog.Logger
	// Transport, if set, replaces the default HTTP transport (tests).
	Transport http.RoundTripper
}

func (c *Config) setDefaults() {
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 6
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 500 * time.Millisecond
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(30*time.Second, c.MinBackoff)
	}
	if c.RoomQueue <= 0 {
		c.RoomQueue = 256
	}
	if c.TotalQueue <= 0 {
		c.TotalQueue = 10000
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.FlushTimeout <= 0 {
		c.FlushTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Sender delivers events to one URL. Its methods are safe for concurrent use.
type Sender struct {
	cfg    Config
	log    *slog.Logger
	client *http.Client
	slots  chan struct{} // requests in flight

	ctx    context.Context // ends when Close gives up flushing
	cancel context.CancelFunc
	wg     sync.WaitGroup // room workers

	mu     sync.Mutex
	rooms  map[string]*roomQueue
	queued int
	closed bool
	// Drops are logged at most once per dropLogInterval, with their count.
	dropped    int
	droppedLog time.Time
}

const dropLogInterval = 10 * time.Second

// roomQueue holds one room's waiting events; one worker at a time drains it.
type roomQueue struct {
	events []*delivery
}

// delivery is one event on its way.
type delivery struct {
	typ  live.EventType
	room string
	body Body
}

// New makes a Sender for cfg.URL.
func New(cfg Config) *Sender {
	cfg.setDefaults()
	transport := cfg.Transport
	if transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = cfg.Concurrency
		transport = t
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Sender{
		cfg: cfg,
		log: cfg.Logger.With("component", "webhooks"),
		client: &http.Client{Transport: transport,
			// A redirect is a misconfigured URL: report it, do not follow it
			// (a POST followed after a 302 becomes a GET).
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		slots:  make(chan struct{}, cfg.Concurrency),
		ctx:    ctx,
		cancel: cancel,
		rooms:  map[string]*roomQueue{},
	}
}

// Send queues an event for delivery and returns at once. Events of one room
// are delivered in the order they are sent. When the room's queue or the
// overall queue is full, or the Sender is closed, the event is dropped.
func (s *Sender) Send(e live.Event) {
	d := &delivery{typ: e.Type, room: e.RoomID, body: bodyOf(e)}
	s.mu.Lock()
	q := s.rooms[e.RoomID]
	var why string
	switch {
	case s.closed:
		why = "shutting down"
	case s.queued >= s.cfg.TotalQueue:
		why = "queue full"
	case q != nil && len(q.events) >= s.cfg.RoomQueue:
		why = "room's queue full"
	}
	if why != "" {
		s.dropped++
		n, logIt := s.dropped, time.Since(s.droppedLog) >= dropLogInterval
		if logIt {
			s.dropped, s.droppedLog = 0, time.Now()
		}
		s.mu.Unlock()
		s.outcome(d, Dropped)
		if logIt {
			s.log.Error("webhook dropped", "why", why, "event", string(d.typ), "room", d.room,
				"delivery", d.body.ID, "droppedSinceLastLog", n)
		}
		return
	}
	s.queued++
	if q != nil {
		q.events = append(q.events, d)
		s.mu.Unlock()
		return
	}
	q = &roomQueue{events: []*delivery{d}}
	s.rooms[e.RoomID] = q
	s.wg.Add(1)
	s.mu.Unlock()
	go s.drain(e.RoomID, q)
}

// Queued is the number of events waiting or being delivered.
func (s *Sender) Queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queued
}

// drain delivers a room's events one after the other until its queue is
// empty, then forgets the room.
func (s *Sender) drain(room string, q *roomQueue) {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		if len(q.events) == 0 {
			delete(s.rooms, room)
			s.mu.Unlock()
			return
		}
		d := q.events[0]
		q.events[0] = nil
		q.events = q.events[1:]
		s.mu.Unlock()

		o := s.deliver(d)

		s.mu.Lock()
		s.queued--
		s.mu.Unlock()
		s.outcome(d, o)
	}
}

func (s *Sender) outcome(d *delivery, o Outcome) {
	if s.cfg.OnOutcome != nil {
		s.cfg.OnOutcome(d.typ, o)
	}
}

// deliver makes up to MaxAttempts attempts, waiting longer after each.
func (s *Sender) deliver(d *delivery) Outcome {
	raw, err := json.Marshal(d.body)
	if err != nil { // cannot happen: the body is plain data
		s.log.Error("cannot encode webhook", "event", string(d.typ), "err", err)
		return Failed
	}
	sig := Sign(s.cfg.Secret, raw)
	log := s.log.With("event", string(d.typ), "room", d.room, "delivery", d.body.ID)
	for attempt := 1; ; attempt++ {
		if s.ctx.Err() != nil { // Close counts and logs these
			return Dropped
		}
		status, retryAfter, err := s.post(d, raw, sig, attempt)
		switch {
		case err != nil && s.ctx.Err() != nil:
			log.Debug("webhook abandoned at shutdown", "attempts", attempt)
			return Dropped
		case err == nil && status/100 == 2:
			log.Debug("webhook delivered", "attempt", attempt, "status", status)
			return Delivered
		case err == nil && !retryable(status):
			log.Error("webhook refused by the receiver", "attempt", attempt, "status", status)
			return Failed
		case attempt >= s.cfg.MaxAttempts:
			log.Error("webhook failed, giving up", "attempts", attempt, "status", status, "err", err)
			return Failed
		}
		wait := max(s.backoff(attempt), min(retryAfter, s.cfg.MaxBackoff))
		log.Warn("webhook failed, will retry", "attempt", attempt, "status", status, "err", err,
			"retryIn", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
		}
	}
}

// retryable says whether a status may succeed later: server errors, and
// timeouts and rate limits. Other statuses (4xx, 3xx) are the receiver's
// final word.
func retryable(status int) bool {
	return status >= 500 || status == http.StatusRequestTimeout ||
		status == http.StatusTooEarly || status == http.StatusTooManyRequests
}

// backoff is the wait after a failed attempt: MinBackoff doubled for each
// earlier failure, capped at MaxBackoff, then drawn at random from its upper
// half so that many rooms retrying at once spread out.
func (s *Sender) backoff(attempt int) time.Duration {
	d := s.cfg.MinBackoff
	for i := 1; i < attempt && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.cfg.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// post makes one attempt. It returns the status, the receiver's Retry-After
// (if any), or the error that prevented an answer.
func (s *Sender) post(d *delivery, raw []byte, sig string, attempt int) (int, time.Duration, error) {
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	case <-s.ctx.Done():
		return 0, 0, s.ctx.Err()
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(raw))
	if err != nil {
		return 0, 0, err
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "onair-webhooks/1")
	h.Set(HeaderEvent, string(d.typ))
	h.Set(HeaderDelivery, d.body.ID)
	h.Set(HeaderAttempt, strconv.Itoa(attempt))
	if sig != "" {
		h.Set(HeaderSignature, sig)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, 0, withoutURL(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // keep the connection
	var retryAfter time.Duration
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		retryAfter = time.Duration(secs) * time.Second
	}
	return resp.StatusCode, retryAfter, nil
}

// Close stops taking events and waits for those queued to be delivered,
// until ctx ends or FlushTimeout passes; then it abandons the rest (counted
// as dropped) and returns an error saying how many.
func (s *Sender) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	left := s.queued
	s.mu.Unlock()
	if left > 0 {
		s.log.Info("flushing webhooks", "queued", left)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.FlushTimeout)
	defer cancel()
	var err error
	waitgroup.Await(&s.wg, ctx.Done(), func() {
		s.mu.Lock()
		left = s.queued
		s.mu.Unlock()
		err = fmt.Errorf("webhooks: %d events not delivered by the shutdown deadline", left)
		s.log.Error("webhooks abandoned at shutdown", "events", left)
		s.cancel()
	})
	s.cancel()
	s.client.CloseIdleConnections()
	return err
}

// withoutURL drops the URL from an HTTP client's error: a webhook URL often
// carries a token in its path, and errors are logged.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// Sign returns the signature header's value for a body: "sha256=" and the
// hex HMAC-SHA256 of the body keyed with secret, or "" without a secret.
func Sign(secret string, body []byte) string {
	if secret == "" {
		return ""
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature header's value against a body, in constant time:
// what a receiver does.
func Verify(secret string, body []byte, signature string) bool {
	want := Sign(secret, body)
	return want != "" && hmac.Equal([]byte(want), []byte(signature))
}
