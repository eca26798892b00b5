// Package alerts watches the media engine's CPU and memory and its failures,
// and tells people: it posts {"text": "…"} to an alert webhook (the shape
// Slack, Mattermost, Rocket.Chat and Discord's /slack endpoint accept) when a
// threshold is crossed, at most once per interval per condition, and again
// when it recovers. It also says when the engine is over its hard limit, so
// that the domain can refuse new broadcasts (Overloaded).
//
// It owns its sampling goroutine and its HTTP client; it reads the engine
// only through MeasureUsage and changes nothing in it.
package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/onair-live/onair/internal/media"
)

// Engine is what the monitor measures.
type Engine interface {
	MeasureUsage() (media.Usage, error)
}

// Config tunes a Monitor. Zero durations take the defaults; a zero
// threshold is off.
type Config struct {
	// URL receives the alerts; none means they are only logged.
	URL string
	// Host names this server in messages (default: the machine's hostname).
	Host string
	// Interval is the least time between two messages of one condition
	// (default 5m).
	Interval time.Duration
	// SampleEvery is how often usage is measured (default 5s).
	SampleEvery time.Duration
	// Sustain is how many samples in a row a level must be seen before it is
	// taken as the new state, up or down (default 3): one busy moment does
	// not refuse broadcasts.
	Sustain int
	// Thresholds, in percent of the machine: Warn alerts, Max also refuses
	// new broadcasts.
	CPUWarn, CPUMax, MemWarn, MemMax float64
	// Timeout bounds one post (default 5s).
	Timeout time.Duration
	Logger  *slog.Logger
	// Now and Transport replace the clock and the HTTP transport (tests).
	Now       func() time.Time
	Transport http.RoundTripper
}

func (c *Config) setDefaults() {
	if c.Host == "" {
		c.Host, _ = os.Hostname()
	}
	if c.Interval <= 0 {
		c.Interval = 5 * time.Minute
	}
	if c.SampleEvery <= 0 {
		c.SampleEvery = 5 * time.Second
	}
	if c.Sustain <= 0 {
		c.Sustain = 3
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Levels of a measured quantity.
const (
	levelOK = iota
	levelWarn
	levelMax
)

// gauge is the state of one measured quantity (CPU or memory).
type gauge struct {
	name      string // as shown in messages
	warn, max float64
	value     float64
	level     int // the sustained level
	pending   int // a level seen but not yet sustained
	seen      int // samples in a row at pending
	announced int // the level people were last told of
}

func (g *gauge) levelOf(v float64) int {
	switch {
	case g.max > 0 && v >= g.max:
		return levelMax
	case g.warn > 0 && v >= g.warn:
		return levelWarn
	}
	return levelOK
}

// Monitor samples the engine and posts alerts.
type Monitor struct {
	cfg    Config
	engine Engine
	log    *slog.Logger
	client *http.Client
	// failures carries MediaFailed reports to the sampling goroutine, so
	// that reporting never waits on a post.
	failures chan string

	mu          sync.Mutex
	cpu, mem    gauge
	usage       media.Usage
	measured    bool
	unmeasured  bool                 // the last sample failed, and people were told
	lastPost    map[string]time.Time // by condition
	suppressed  map[string]int       // failures not posted, by condition
	overloadErr error
}

// New makes a monitor of engine. Nothing runs until Run.
func New(cfg Config, engine Engine) *Monitor {
	cfg.setDefaults()
	transport := cfg.Transport
	if transport == nil {
		transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	return &Monitor{
		cfg: cfg, engine: engine,
		log:        cfg.Logger.With("component", "alerts"),
		client:     &http.Client{Transport: transport, Timeout: cfg.Timeout},
		failures:   make(chan string, 16),
		cpu:        gauge{name: "CPU", warn: cfg.CPUWarn, max: cfg.CPUMax},
		mem:        gauge{name: "memory", warn: cfg.MemWarn, max: cfg.MemMax},
		lastPost:   map[string]time.Time{},
		suppressed: map[string]int{},
	}
}

// Run samples every SampleEvery and posts what needs saying, until ctx ends.
func (m *Monitor) Run(ctx context.Context) {
	defer m.client.CloseIdleConnections()
	t := time.NewTicker(m.cfg.SampleEvery)
	defer t.Stop()
	m.Sample()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.Sample()
		case f := <-m.failures:
			m.failure(f)
		}
	}
}

// Overloaded returns an error saying why when the engine is over a hard
// limit (sustained), and nil otherwise. Safe from any goroutine.
func (m *Monitor) Overloaded() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.overloadErr
}

// Usage is the last measurement, and whether there has been one.
func (m *Monitor) Usage() (media.Usage, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.usage, m.measured
}

// MediaFailed reports a failure of the media engine (a pipeline or an
// endpoint it could not create). It never blocks: when many arrive at once,
// the surplus is only logged.
func (m *Monitor) MediaFailed(what string, err error) {
	msg := fmt.Sprintf("media engine failure: %s: %v", what, err)
	select {
	case m.failures <- msg:
	default:
		m.log.Error("media engine failure (not alerted: too many at once)", "what", what, "err", err)
	}
}

// Sample measures the engine once, updates the overload state and posts
// what needs saying, after the failures reported so far. Run calls it;
// tests call it to step the monitor.
func (m *Monitor) Sample() {
	for drained := false; !drained; {
		select {
		case f := <-m.failures:
			m.failure(f)
		default:
			drained = true
		}
	}
	u, err := m.engine.MeasureUsage()
	var msgs []message
	m.mu.Lock()
	if err != nil {
		lvl := slog.LevelDebug // once told, not at every sample
		if !m.unmeasured {
			lvl = slog.LevelWarn
			msgs = append(msgs, message{"usage", fmt.Sprintf("cannot measure the media engine's CPU and memory: %v", err),
				func() { m.unmeasured = true }})
		}
		m.mu.Unlock()
		m.log.Log(context.Background(), lvl, "cannot measure the media engine", "err", err)
		m.post(msgs)
		return
	}
	if m.unmeasured {
		msgs = append(msgs, message{"", "the media engine's CPU and memory can be measured again",
			func() { m.unmeasured = false }})
	}
	m.usage, m.measured = u, true
	msgs = append(msgs, m.step(&m.cpu, u.CPUPercent)...)
	msgs = append(msgs, m.step(&m.mem, u.MemoryPercent)...)
	m.overloadErr = nil
	for _, g := range []*gauge{&m.cpu, &m.mem} {
		if g.level == levelMax {
			m.overloadErr = fmt.Errorf("the media engine is over its hard limit: %s at %.1f%%, limit %g%%", g.name, g.value, g.max)
		}
	}
	m.mu.Unlock()
	m.post(msgs)
}

// message is one alert to post: its condition (for the rate limit), its
// text, and what to record once it is posted.
type message struct {
	condition string
	text      string
	posted    func()
}

// step takes a new value of a gauge; m.mu is held.
func (m *Monitor) step(g *gauge, v float64) []message {
	g.value = v
	lvl := g.levelOf(v)
	switch {
	case lvl == g.level:
		g.seen = 0
	case lvl == g.pending:
		g.seen++
	default:
		g.pending, g.seen = lvl, 1
	}
	if lvl != g.level && g.seen >= m.cfg.Sustain {
		from := g.level
		g.level, g.seen = lvl, 0
		m.log.Warn("media engine usage changed level", "metric", g.name, "value", v, "from", from, "to", lvl)
	}
	switch {
	case g.level > g.announced:
		// Worse than people know: tell them (this is also where a message
		// held back by the rate limit goes out once it may).
		level := g.level
		return []message{{condition: g.name + levelName(level), text: g.worse(level),
			posted: func() { g.announced = level }}}
	case g.level < g.announced:
		// Better than people were told: a recovery, paired with the alert it
		// answers, which the rate limit already bounds.
		level := g.level
		return []message{{condition: "", text: g.better(g.announced, level),
			posted: func() { g.announced = level }}}
	}
	return nil
}

func levelName(l int) string {
	switch l {
	case levelWarn:
		return "-warn"
	case levelMax:
		return "-max"
	}
	return "-ok"
}

func (g *gauge) worse(level int) string {
	if level == levelMax {
		return fmt.Sprintf("%s at %.1f%%, over the hard limit of %g%%: new broadcasts are refused (503)", g.name, g.value, g.max)
	}
	return fmt.Sprintf("%s at %.1f%%, over the warning threshold of %g%%", g.name, g.value, g.warn)
}

func (g *gauge) better(from, to int) string {
	switch {
	case from == levelMax && to == levelWarn:
		return fmt.Sprintf("%s down to %.1f%%, under the hard limit of %g%%: new broadcasts are accepted again (still over the warning threshold of %g%%)",
			g.name, g.value, g.max, g.warn)
	case from == levelMax:
		return fmt.Sprintf("%s back to %.1f%%, under the hard limit of %g%%: new broadcasts are accepted again", g.name, g.value, g.max)
	}
	return fmt.Sprintf("%s back to %.1f%%, under the warning threshold of %g%%", g.name, g.value, g.warn)
}

// failure posts a reported media engine failure, within the rate limit.
func (m *Monitor) failure(text string) {
	m.log.Error(text)
	m.post([]message{{condition: "engine", text: text}})
}

// post sends messages, each at most once per Interval per condition (an
// empty condition is not limited), and records those sent.
func (m *Monitor) post(msgs []message) {
	for _, msg := range msgs {
		now := m.cfg.Now()
		m.mu.Lock()
		if msg.condition != "" {
			if last, ok := m.lastPost[msg.condition]; ok && now.Sub(last) < m.cfg.Interval {
				if msg.condition == "engine" { // distinct failures; a gauge's is one state
					m.suppressed[msg.condition]++
				}
				m.mu.Unlock()
				m.log.Debug("alert held back by the interval", "condition", msg.condition, "text", msg.text)
				continue
			}
		}
		text := "onair on " + m.cfg.Host + ": " + msg.text
		if n := m.suppressed[msg.condition]; n > 0 {
			text += fmt.Sprintf(" (%d more since the last message)", n)
		}
		m.mu.Unlock()
		if err := m.send(text); err != nil {
			m.log.Error("cannot post alert", "err", err, "text", text)
			continue // tried again at the next sample
		}
		m.mu.Lock()
		if msg.condition != "" {
			m.lastPost[msg.condition] = now
			delete(m.suppressed, msg.condition)
		}
		if msg.posted != nil {
			msg.posted()
		}
		m.mu.Unlock()
	}
}

// send posts {"text": text}, or only logs it without a URL.
func (m *Monitor) send(text string) error {
	m.log.Warn("alert", "text", text)
	if m.cfg.URL == "" {
		return nil
	}
	body, err := json.Marshal(map[string]string{"text": text})
	if err != nil {
		return err
	}
	resp, err := m.client.Post(m.cfg.URL, "application/json", bytes.NewReader(body))
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // the URL is a secret (Slack's is): not in logs
			err = fmt.Errorf("%s: %w", ue.Op, ue.Err)
		}
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("alert webhook answered %s", resp.Status)
	}
	return nil
}
