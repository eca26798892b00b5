package config

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"time"
)

// Observe is how onair reports on itself: lifecycle webhooks, alerts about
// the media engine, and Prometheus metrics.
type Observe struct {
	// WebhookURL receives the lifecycle events, signed with WebhookSecret.
	WebhookURL    string
	WebhookSecret string

	// AlertWebhookURL receives {"text": …} alerts; none means they are only
	// logged (the hard limits still refuse broadcasts).
	AlertWebhookURL string
	// AlertInterval is the least time between two alerts of one condition.
	AlertInterval time.Duration
	// AlertSampleInterval is how often the media engine's usage is measured.
	AlertSampleInterval time.Duration
	// Thresholds in percent of the machine (0: off). Over a Max, new
	// broadcasts are refused with 503.
	AlertCPUWarn, AlertCPUMax float64
	AlertMemWarn, AlertMemMax float64

	// Metrics serves Prometheus metrics at GET /metrics.
	Metrics bool
}

func (o *Observe) register(fs *flag.FlagSet) {
	fs.StringVar(&o.WebhookURL, "webhook-url", "", "POST the broadcast lifecycle events (JSON, signed) to this URL (default: off)")
	fs.StringVar(&o.WebhookSecret, "webhook-secret", "", "secret that signs webhooks (HMAC-SHA256); prefer ONAIR_WEBHOOK_SECRET to a flag, which others can see in ps")
	fs.StringVar(&o.AlertWebhookURL, "alert-webhook-url", "", "POST {\"text\": …} alerts about the media engine here (Slack, Mattermost, Rocket.Chat; default: log only)")
	fs.DurationVar(&o.AlertInterval, "alert-interval", 5*time.Minute, "least time between two alerts of one condition")
	fs.DurationVar(&o.AlertSampleInterval, "alert-sample-interval", 5*time.Second, "how often the media engine's CPU and memory are measured")
	fs.Float64Var(&o.AlertCPUWarn, "alert-cpu-warn", 80, "alert when the media engine's CPU is over this percent of the machine (0: off)")
	fs.Float64Var(&o.AlertCPUMax, "alert-cpu-max", 95, "alert and refuse new broadcasts (503) when CPU is over this percent (0: off)")
	fs.Float64Var(&o.AlertMemWarn, "alert-mem-warn", 80, "alert when the media engine's memory is over this percent of the machine (0: off)")
	fs.Float64Var(&o.AlertMemMax, "alert-mem-max", 95, "alert and refuse new broadcasts (503) when memory is over this percent (0: off)")
	fs.BoolVar(&o.Metrics, "metrics", true, "serve Prometheus metrics at /metrics (unauthenticated: keep it off the public internet)")
}

// check rejects settings that cannot work, saying what to do.
func (o Observe) check() error {
	if err := checkURL("-webhook-url", o.WebhookURL); err != nil {
		return err
	}
	if o.WebhookURL != "" && o.WebhookSecret == "" {
		return errors.New("-webhook-url needs -webhook-secret (better: ONAIR_WEBHOOK_SECRET): receivers check the signature with it")
	}
	if err := checkURL("-alert-webhook-url", o.AlertWebhookURL); err != nil {
		return err
	}
	if o.AlertInterval <= 0 {
		return errors.New("-alert-interval must be positive")
	}
	if o.AlertSampleInterval <= 0 {
		return errors.New("-alert-sample-interval must be positive")
	}
	for _, t := range []struct {
		what      string
		warn, max float64
	}{{"cpu", o.AlertCPUWarn, o.AlertCPUMax}, {"mem", o.AlertMemWarn, o.AlertMemMax}} {
		if t.warn < 0 || t.warn > 100 || t.max < 0 || t.max > 100 {
			return fmt.Errorf("-alert-%s-warn and -alert-%s-max are percentages, 0 to 100", t.what, t.what)
		}
		if t.warn > 0 && t.max > 0 && t.warn > t.max {
			return fmt.Errorf("-alert-%s-warn (%g) is over -alert-%s-max (%g)", t.what, t.warn, t.what, t.max)
		}
	}
	return nil
}

func checkURL(flagName, s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: %q is not an http:// or https:// URL", flagName, s)
	}
	return nil
}
