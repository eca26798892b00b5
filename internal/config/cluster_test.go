package config_test

import (
	"strings"
	"testing"
	"time"
)

func TestClusterDefaultsAndEnv(t *testing.T) {
	secret := strings.Repeat("k", 32)
	c, err := load([]string{"-redis", "redis://r:6379"}, map[string]string{
		"ONAIR_ADVERTISE_URL": "http://10.0.0.5:8080", "ONAIR_CLUSTER_SECRET": secret})
	if err != nil {
		t.Fatal(err)
	}
	if !c.ClusterOn() || c.AdvertiseURL != "http://10.0.0.5:8080" || c.ClusterSecret != secret ||
		c.RelayFanout != 16 || c.RelayGrace != 10*time.Second || c.DrainTimeout != 5*time.Minute || c.NodeMaxViewers != 0 {
		t.Errorf("cluster settings %+v", c.Cluster)
	}
	if c, err := load([]string{"-advertise-url", "http://a:1"}, nil); err != nil || c.ClusterOn() {
		t.Errorf("-advertise-url without -redis: on %v, %v", c.ClusterOn(), err)
	}
}

// The cluster secret is required as soon as -redis and -advertise-url are
// set, and the other settings must make sense.
func TestClusterRejectsNonsense(t *testing.T) {
	secret := strings.Repeat("k", 32)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-redis", "redis://r:6379", "-advertise-url", "http://a:1"}, "-cluster-secret (ONAIR_CLUSTER_SECRET) is required"},
		{[]string{"-redis", "redis://r:6379", "-advertise-url", "http://a:1", "-cluster-secret", "short"}, "at least 32 bytes"},
		{[]string{"-advertise-url", "a:1"}, "not an http:// or https:// base URL"},
		{[]string{"-relay-fanout", "0"}, "-relay-fanout must be at least 1"},
		{[]string{"-drain-timeout", "-1s", "-cluster-secret", secret}, "must not be negative"},
	} {
		if _, err := load(tt.args, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want %q", tt.args, err, tt.want)
		}
	}
}
