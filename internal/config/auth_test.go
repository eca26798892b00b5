package config_test

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/config"
)

const secret32 = "0123456789abcdef0123456789abcdef"

func TestAuthAndLimitsDefaults(t *testing.T) {
	c, err := load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Auth.Tokens() || len(c.AuthKeys) != 0 {
		t.Errorf("tokens on by default: %+v", c.Auth)
	}
	if len(c.AllowedOrigins) != 1 || c.AllowedOrigins[0] != "*" {
		t.Errorf("AllowedOrigins %q, want [*]", c.AllowedOrigins)
	}
	want := config.Limits{MaxMessagesPerSecond: 50, MaxSessionsPerSecond: 20, MaxViewersPerRoom: 10000, MaxRooms: 1000, MaxCandidates: 256,
		SessionsLimitExempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
	if !reflect.DeepEqual(c.Limits, want) {
		t.Errorf("Limits %+v, want %+v", c.Limits, want)
	}
	c, err = load([]string{"-sessions-limit-exempt", "10.1.2.3/16, 192.0.2.7"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c.SessionsLimitExempt); got != "[10.1.0.0/16 192.0.2.7/32]" {
		t.Errorf("exempt %s", got)
	}
	if c, err = load([]string{"-sessions-limit-exempt", ""}, nil); err != nil || len(c.SessionsLimitExempt) != 0 {
		t.Errorf("empty exempt: %v, %v", c.SessionsLimitExempt, err)
	}
}

func TestAuthSecret(t *testing.T) {
	c, err := load(nil, map[string]string{"ONAIR_AUTH_SECRET": secret32, "ONAIR_ALLOWED_ORIGINS": "https://app.example.com, *.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Auth.Tokens() || len(c.AuthKeys) != 1 || string(c.AuthKeys[0]) != secret32 {
		t.Errorf("keys %q", c.AuthKeys)
	}
	if strings.Join(c.AllowedOrigins, " ") != "https://app.example.com *.example.org" {
		t.Errorf("origins %q", c.AllowedOrigins)
	}

	file := filepath.Join(t.TempDir(), "keys")
	other := strings.Repeat("k", 40)
	if err := os.WriteFile(file, []byte("# rotated 2026-01\n"+secret32+"\n"+other+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = load([]string{"-auth-secret-file", file}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.AuthKeys) != 2 || string(c.AuthKeys[0]) != secret32 || string(c.AuthKeys[1]) != other {
		t.Errorf("keys from file %q", c.AuthKeys)
	}

	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"-auth-secret", "short"}, "at least 32"},
		{[]string{"-auth-secret", secret32, "-auth-secret-file", file}, "give one of them"},
		{[]string{"-auth-secret-file", filepath.Join(t.TempDir(), "none")}, "-auth-secret-file"},
		{[]string{"-auth-secret", secret32, "-whip-stream-key", "k"}, "cannot be used with -auth-secret"},
		{[]string{"-allowed-origins", "example.com/path"}, "-allowed-origins"},
		{[]string{"-max-rooms", "-1"}, "must not be negative"},
		{[]string{"-sessions-limit-exempt", "proxy"}, "-sessions-limit-exempt"},
	} {
		if _, err := load(bad.args, nil); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: error %v, want one saying %q", bad.args, err, bad.want)
		}
	}
}

func TestLoadToken(t *testing.T) {
	env := map[string]string{"ONAIR_AUTH_SECRET": secret32}
	getenv := func(k string) string { return env[k] }
	tok, err := config.LoadToken([]string{"-sub", "ann@example.com", "-grant", "publish,view", "-grant", "admin", "-room", "concert", "-ttl", "2h"}, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if string(tok.Key) != secret32 || tok.Subject != "ann@example.com" || strings.Join(tok.Grants, ",") != "publish,view,admin" ||
		tok.Room != "concert" || tok.TTL != 2*time.Hour {
		t.Errorf("token %+v", tok)
	}
	for _, bad := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-sub", "a", "-grant", "view"}, nil, "no secret"},
		{[]string{"-grant", "view"}, env, "-sub"},
		{[]string{"-sub", "a"}, env, "-grant"},
		{[]string{"-sub", "a", "-grant", "root"}, env, "root"},
		{[]string{"-sub", "a", "-grant", "view", "-ttl", "0s"}, env, "-ttl"},
		{[]string{"-sub", "a", "-grant", "view"}, map[string]string{"ONAIR_AUTH_SECRET": "x"}, "ONAIR_AUTH_SECRET is 1 bytes"},
	} {
		_, err := config.LoadToken(bad.args, func(k string) string { return bad.env[k] }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: error %v, want one saying %q", bad.args, err, bad.want)
		}
	}
}
