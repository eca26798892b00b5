package config

import (
	"strings"
	"testing"
	"time"
)

func TestNetworkDefaultsOff(t *testing.T) {
	c, err := loadTLS(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.ICETCPPort != 0 || c.TURN() || c.TURNCredentialTTL != 24*time.Hour || c.TURNMaxAllocationsPerUser != 10 {
		t.Errorf("defaults: %+v", c.Network)
	}
}

func TestTURNFromFlagsAndEnv(t *testing.T) {
	c, err := loadTLS(t, []string{"-ice-tcp-port", "8443", "-turn-port", "3478", "-ice-udp-mux-port", "50000",
		"-tls-self-signed", "-turn-tls-port", "5349", "-turn-credential-ttl", "1h"},
		map[string]string{"ONAIR_TURN_SECRET": "0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	n := c.Network
	if n.ICETCPPort != 8443 || n.TURNPort != 3478 || n.TURNTLSPort != 5349 || n.TURNSecret != "0123456789abcdef" ||
		n.TURNCredentialTTL != time.Hour || !c.TURN() {
		t.Errorf("%+v", n)
	}
}

func TestNetworkErrorsSayWhatToFix(t *testing.T) {
	secret := map[string]string{"ONAIR_TURN_SECRET": "0123456789abcdef"}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-ice-tcp-port", "70000"}, nil, "-ice-tcp-port"},
		{[]string{"-turn-port", "3478", "-ice-udp-mux-port", "50000"}, nil, "-turn-secret"},
		{[]string{"-turn-port", "3478", "-ice-udp-mux-port", "50000"}, map[string]string{"ONAIR_TURN_SECRET": "short"}, "at least 16"},
		{[]string{"-turn-port", "3478"}, secret, "-ice-udp-mux-port"},
		{[]string{"-turn-tls-port", "5349", "-ice-udp-mux-port", "50000"}, secret, "-tls-cert"},
		{[]string{"-turn-port", "3478", "-turn-tls-port", "3478", "-ice-udp-mux-port", "50000", "-tls-self-signed"}, secret, "must differ"},
		{[]string{"-turn-port", "3478", "-ice-udp-mux-port", "50000", "-turn-max-allocations-per-user", "0"}, secret, "at least 1"},
		{[]string{"-turn-relay-ip", "nope"}, nil, "-turn-relay-ip"},
		{[]string{"-turn-port", "50000", "-ice-udp-mux-port", "50000"}, secret, "not be a media port"},
	} {
		_, err := loadTLS(t, tc.args, tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one that mentions %q", tc.args, err, tc.want)
		}
	}
}
