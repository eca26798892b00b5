package config_test

import (
	"io"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/media"
)

func load(args []string, env map[string]string) (config.Config, error) {
	return config.Load(args, func(k string) string { return env[k] }, io.Discard)
}

func TestLoadDefaults(t *testing.T) {
	c, err := load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Addr", c.Addr, ":8080"},
		{"BasePath", c.BasePath, "/signal"},
		{"ICELoopback", c.ICELoopback, false},
		{"UDPMuxPort", c.UDPMuxPort, 0},
		{"UDPPortMin", c.UDPPortMin, uint16(0)},
		{"DisconnectTimeout", c.DisconnectTimeout, 15 * time.Second},
		{"ConnectTimeout", c.ConnectTimeout, 30 * time.Second},
		{"PresenterWait", c.PresenterWait, 10 * time.Second},
		{"ReapInterval", c.ReapInterval, 30 * time.Second},
		{"ShutdownTimeout", c.ShutdownTimeout, 10 * time.Second},
		{"MaxMessageBytes", c.MaxMessageBytes, int64(64 << 10)},
		{"MaxVideoBitrate", c.MaxVideoBitrate, 0},
		{"LogLevel", c.LogLevel, "info"},
		{"LogFormat", c.LogFormat, "text"},
		{"ICEServers", len(c.ICEServers), 0},
		{"ICEAllowedIPs", len(c.ICEAllowedIPs), 0},
		{"PublicIPs", len(c.PublicIPs), 0},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("default %s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

// A flag -foo-bar is also ONAIR_FOO_BAR; the flag wins; an empty variable
// is as good as none.
func TestLoadEnvironmentAndFlags(t *testing.T) {
	env := map[string]string{
		"ONAIR_ADDR":               ":9000",
		"ONAIR_DISCONNECT_TIMEOUT": "3s",
		"ONAIR_ICE_LOOPBACK":       "true",
		"ONAIR_MAX_MESSAGE_BYTES":  "2048",
		"ONAIR_BASE_PATH":          "api/v1/",
		"ONAIR_LOG_LEVEL":          "",
		"ONAIR_ICE_UDP_PORTS":      "40000-40010",
	}
	c, err := load([]string{"-addr", "127.0.0.1:9100", "-ice-loopback=false", "-reap-interval", "0"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:9100" {
		t.Errorf("Addr %q: the flag must win over ONAIR_ADDR", c.Addr)
	}
	if c.ICELoopback {
		t.Error("ICELoopback: -ice-loopback=false must win over ONAIR_ICE_LOOPBACK=true")
	}
	if c.DisconnectTimeout != 3*time.Second || c.MaxMessageBytes != 2048 {
		t.Errorf("DisconnectTimeout %s, MaxMessageBytes %d: want 3s and 2048 from the environment",
			c.DisconnectTimeout, c.MaxMessageBytes)
	}
	if c.BasePath != "/api/v1" {
		t.Errorf("BasePath %q, want /api/v1", c.BasePath)
	}
	if c.LogLevel != "info" {
		t.Errorf("LogLevel %q: an empty ONAIR_LOG_LEVEL must leave the default", c.LogLevel)
	}
	if c.UDPPortMin != 40000 || c.UDPPortMax != 40010 {
		t.Errorf("UDP ports %d-%d, want 40000-40010", c.UDPPortMin, c.UDPPortMax)
	}
	if c.ReapInterval != 0 {
		t.Errorf("ReapInterval %s, want 0 (never)", c.ReapInterval)
	}
}

func TestLoadParsesLists(t *testing.T) {
	c, err := load([]string{
		"-public-ip", " 203.0.113.7, 198.51.100.2 ",
		"-ice-allowed-ips", "127.0.0.1,10.0.0.0/8,::1",
		"-ice-servers", "stun:stun.example.com:3478,turn:alice:p%40ss@turn.example.com:3478,turns:turn.example.com:5349",
		"-max-video-kbps", "1500",
		"-base-path", "/",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"203.0.113.7", "198.51.100.2"}; !reflect.DeepEqual(c.PublicIPs, want) {
		t.Errorf("PublicIPs %v, want %v", c.PublicIPs, want)
	}
	want := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	if !reflect.DeepEqual(c.ICEAllowedIPs, want) {
		t.Errorf("ICEAllowedIPs %v, want %v", c.ICEAllowedIPs, want)
	}
	wantICE := []media.ICEServer{
		{URLs: []string{"stun:stun.example.com:3478"}},
		{URLs: []string{"turn:turn.example.com:3478"}, Username: "alice", Credential: "p@ss"},
		{URLs: []string{"turns:turn.example.com:5349"}},
	}
	if !reflect.DeepEqual(c.ICEServers, wantICE) {
		t.Errorf("ICEServers %+v, want %+v", c.ICEServers, wantICE)
	}
	if c.MaxVideoBitrate != 1500000 {
		t.Errorf("MaxVideoBitrate %d, want 1500000", c.MaxVideoBitrate)
	}
	if c.BasePath != "" {
		t.Errorf("BasePath %q, want \"\" for /", c.BasePath)
	}
}

// Bad values are errors that name what is wrong, never silent defaults.
func TestLoadRejectsBadValues(t *testing.T) {
	tests := []struct {
		args    []string
		env     map[string]string
		mention string
	}{
		{env: map[string]string{"ONAIR_DISCONNECT_TIMEOUT": "soon"}, mention: "ONAIR_DISCONNECT_TIMEOUT"},
		{env: map[string]string{"ONAIR_ICE_LOOPBACK": "maybe"}, mention: "ONAIR_ICE_LOOPBACK"},
		{env: map[string]string{"ONAIR_ICE_UDP_MUX_PORT": "x"}, mention: "ONAIR_ICE_UDP_MUX_PORT"},
		{args: []string{"-disconnect-timeout", "abc"}, mention: "disconnect-timeout"},
		{args: []string{"-no-such-flag"}, mention: "no-such-flag"},
		{args: []string{"serve"}, mention: "serve"},
		{args: []string{"-ice-udp-ports", "5000"}, mention: "ice-udp-ports"},
		{args: []string{"-ice-udp-ports", "6000-5000"}, mention: "ice-udp-ports"},
		{args: []string{"-ice-udp-ports", "0-10"}, mention: "ice-udp-ports"},
		{args: []string{"-ice-udp-ports", "a-b"}, mention: "ice-udp-ports"},
		{args: []string{"-public-ip", "not-an-ip"}, mention: "public-ip"},
		{args: []string{"-ice-allowed-ips", "300.1.1.1"}, mention: "ice-allowed-ips"},
		{args: []string{"-ice-allowed-ips", "10.0.0.0/33"}, mention: "ice-allowed-ips"},
		{args: []string{"-ice-servers", "http://stun.example.com"}, mention: "ice-servers"},
		{args: []string{"-ice-servers", "stun"}, mention: "ice-servers"},
		{args: []string{"-max-video-kbps", "-1"}, mention: "max-video-kbps"},
		{args: []string{"-max-message-bytes", "100"}, mention: "max-message-bytes"},
		{args: []string{"-log-format", "xml"}, mention: "log-format"},
	}
	for _, tt := range tests {
		_, err := load(tt.args, tt.env)
		if err == nil {
			t.Errorf("args %q env %v: no error", tt.args, tt.env)
			continue
		}
		if !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("args %q env %v: error %q does not mention %q", tt.args, tt.env, err, tt.mention)
		}
	}
}
