package config_test

import (
	"strings"
	"testing"
	"time"
)

func TestStateDefaults(t *testing.T) {
	c, err := load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := c.State; s.RedisURL != "" || s.RedisPrefix != "onair:" || s.RedisOwnerTTL != 15*time.Second {
		t.Errorf("defaults %+v", s)
	}
}

// -redis is -redis-url; the environment has ONAIR_REDIS_URL only.
func TestStateRedisFlagsAndEnv(t *testing.T) {
	for _, tt := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-redis", "redis://a:6379/0"}, nil, "redis://a:6379/0"},
		{[]string{"-redis-url", "redis://b:6379/1"}, nil, "redis://b:6379/1"},
		{nil, map[string]string{"ONAIR_REDIS_URL": "rediss://c:6380/0"}, "rediss://c:6380/0"},
		{[]string{"-redis", "redis://flag:6379"}, map[string]string{"ONAIR_REDIS_URL": "redis://env:6379"}, "redis://flag:6379"},
		{nil, map[string]string{"ONAIR_REDIS": "redis://alias:6379"}, ""},
	} {
		c, err := load(tt.args, tt.env)
		if err != nil {
			t.Errorf("%v %v: %v", tt.args, tt.env, err)
			continue
		}
		if c.RedisURL != tt.want {
			t.Errorf("%v %v: RedisURL %q, want %q", tt.args, tt.env, c.RedisURL, tt.want)
		}
	}
	c, err := load([]string{"-redis-prefix", "live:", "-redis-owner-ttl", "2s"}, nil)
	if err != nil || c.RedisPrefix != "live:" || c.RedisOwnerTTL != 2*time.Second {
		t.Errorf("prefix and TTL: %+v, %v", c.State, err)
	}
}

func TestStateRejectsNonsense(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-redis", "http://x:6379"}, "-redis-url"},
		{[]string{"-redis", "localhost:6379"}, "-redis-url"},
		{[]string{"-redis-owner-ttl", "100ms"}, "-redis-owner-ttl"},
	} {
		if _, err := load(tt.args, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want an error naming %s", tt.args, err, tt.want)
		}
	}
}
