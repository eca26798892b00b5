package app

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/onair-live/onair/internal/alerts"
	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/hooks"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/media"
	"github.com/onair-live/onair/internal/metrics"
	"github.com/onair-live/onair/internal/sfu"
)

// observers are the parts that watch the server and tell others: lifecycle
// webhooks, alerts about the media engine, Prometheus metrics. The domain's
// events fan out to them; none of them may block it.
type observers struct {
	hooks   *hooks.Sender    // nil without -webhook-url
	metrics *metrics.Metrics // nil with -metrics=false
	alerts  *alerts.Monitor  // always: it also decides when broadcasts are refused

	stopAlerts context.CancelFunc
	alertsDone chan struct{}
}

// newObservers makes the observers that need nothing else (before the
// media engine, which reports join latency to metrics).
func newObservers(cfg config.Config, log *slog.Logger) *observers {
	o := &observers{alertsDone: make(chan struct{})}
	if cfg.Metrics {
		o.metrics = metrics.New()
		o.metrics.Rejections(rejectionReasons...)
	}
	if cfg.WebhookURL != "" {
		hc := hooks.Config{URL: cfg.WebhookURL, Secret: cfg.WebhookSecret, Logger: log}
		if o.metrics != nil {
			hc.OnOutcome = func(t live.EventType, out hooks.Outcome) { o.metrics.Webhook(t, string(out)) }
		}
		o.hooks = hooks.New(hc)
	}
	// The URLs are not logged: a messenger's webhook URL is a secret.
	log.Info("observability", "webhooks", cfg.WebhookURL != "", "alertWebhook", cfg.AlertWebhookURL != "",
		"metrics", cfg.Metrics, "cpuWarn", cfg.AlertCPUWarn, "cpuMax", cfg.AlertCPUMax,
		"memWarn", cfg.AlertMemWarn, "memMax", cfg.AlertMemMax)
	return o
}

// connected is the media engine's OnConnect.
func (o *observers) connected(role media.Role, took time.Duration) {
	if o.metrics != nil {
		o.metrics.Connected(role, took)
	}
}

// watch makes the monitor of the engine and returns the domain's options
// with its observers set. Nothing runs until start.
func (o *observers) watch(cfg config.Config, log *slog.Logger, engine *sfu.Engine, opts live.Options) live.Options {
	o.alerts = alerts.New(alerts.Config{URL: cfg.AlertWebhookURL, Interval: cfg.AlertInterval,
		SampleEvery: cfg.AlertSampleInterval, CPUWarn: cfg.AlertCPUWarn, CPUMax: cfg.AlertCPUMax,
		MemWarn: cfg.AlertMemWarn, MemMax: cfg.AlertMemMax, Logger: log}, engine)
	opts.OnEvent = o.event
	opts.Admit = o.admit
	opts.OnMediaError = o.alerts.MediaFailed
	return opts
}

// start runs the alerts, gives metrics the domain and the engine to read at
// each scrape, and returns the /metrics handler (nil without metrics).
func (o *observers) start(svc *live.Service, engine *sfu.Engine, hlsCounts func() (viewers, muxers int)) http.Handler {
	ctx, cancel := context.WithCancel(context.Background())
	o.stopAlerts = cancel
	go func() {
		defer close(o.alertsDone)
		o.alerts.Run(ctx)
	}()
	if o.metrics == nil {
		return nil
	}
	src := metrics.Sources{Domain: svc, Engine: engine, Usage: o.alerts.Usage, Overloaded: o.alerts.Overloaded,
		HLS: hlsCounts}
	if o.hooks != nil {
		src.WebhookQueue = o.hooks.Queued
	}
	o.metrics.Watch(src)
	return o.metrics.Handler()
}

// event fans a lifecycle event out; it is called under a room's lock.
func (o *observers) event(e live.Event) {
	if o.hooks != nil {
		o.hooks.Send(e)
	}
	if o.metrics != nil {
		o.metrics.Event(e)
	}
}

// admit refuses new broadcasts while the media engine is over a hard limit.
func (o *observers) admit() error {
	err := o.alerts.Overloaded()
	if err != nil && o.metrics != nil {
		o.metrics.Rejected("overloaded")
	}
	return err
}

// rejected counts a request refused by a grant or a limit (the transports'
// and the domain's Reject* reasons).
func (o *observers) rejected(reason string) {
	if o.metrics != nil {
		o.metrics.Rejected(reason)
	}
}

// recordingOutcome counts what became of a recording (metrics.Recording*
// outcomes): for the recorder's wiring.
func (o *observers) recordingOutcome(outcome string) {
	if o.metrics != nil {
		o.metrics.Recording(outcome)
	}
}

// shutdown flushes the webhooks (the last events of the shutdown among
// them) within ctx, and stops the alerts.
func (o *observers) shutdown(ctx context.Context) error {
	var err error
	if o.hooks != nil {
		err = o.hooks.Close(ctx)
	}
	if o.stopAlerts != nil {
		o.stopAlerts()
		<-o.alertsDone
	}
	return err
}
