package config_test

import (
	"strings"
	"testing"
	"time"
)

func TestObserveDefaults(t *testing.T) {
	c, err := load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := c.Observe
	if o.WebhookURL != "" || o.AlertWebhookURL != "" || !o.Metrics || o.AlertInterval != 5*time.Minute ||
		o.AlertSampleInterval != 5*time.Second || o.AlertCPUWarn != 80 || o.AlertCPUMax != 95 ||
		o.AlertMemWarn != 80 || o.AlertMemMax != 95 {
		t.Errorf("defaults %+v", o)
	}
}

// The webhook secret comes from the environment (not ps); flags set the rest.
func TestObserveFromEnvAndFlags(t *testing.T) {
	c, err := load([]string{"-webhook-url", "https://hooks.example.com/onair", "-alert-cpu-max", "90",
		"-alert-interval", "1m", "-metrics=false"}, map[string]string{"ONAIR_WEBHOOK_SECRET": "xyz",
		"ONAIR_ALERT_WEBHOOK_URL": "https://chat.example.com/hook", "ONAIR_ALERT_MEM_WARN": "0"})
	if err != nil {
		t.Fatal(err)
	}
	o := c.Observe
	if o.WebhookURL != "https://hooks.example.com/onair" || o.WebhookSecret != "xyz" ||
		o.AlertWebhookURL != "https://chat.example.com/hook" || o.AlertCPUMax != 90 || o.AlertMemWarn != 0 ||
		o.AlertInterval != time.Minute || o.Metrics {
		t.Errorf("loaded %+v", o)
	}
}

func TestObserveRejectsNonsense(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-webhook-url", "https://x.example/h"}, "-webhook-secret"},
		{[]string{"-webhook-url", "ftp://x.example/h", "-webhook-secret", "s"}, "not an http"},
		{[]string{"-webhook-url", "/relative", "-webhook-secret", "s"}, "not an http"},
		{[]string{"-alert-webhook-url", "chat"}, "-alert-webhook-url"},
		{[]string{"-alert-cpu-warn", "96"}, "over -alert-cpu-max"},
		{[]string{"-alert-mem-max", "120"}, "percentages"},
		{[]string{"-alert-cpu-warn", "-1"}, "percentages"},
		{[]string{"-alert-interval", "0s"}, "-alert-interval"},
		{[]string{"-alert-sample-interval", "-1s"}, "-alert-sample-interval"},
	} {
		_, err := load(c.args, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one mentioning %q", c.args, err, c.want)
		}
	}
}
