package ratelimit

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestPerAddress(t *testing.T) {
	now := time.Unix(1000, 0)
	p := NewPerAddress(2, 3, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}) // 2 a second, bursts of 3
	p.now = func() time.Time { return now }
	for i := 0; i < 3; i++ {
		if ok, _ := p.Allow("10.0.0.1:1234"); !ok {
			t.Fatalf("event %d of the burst refused", i+1)
		}
	}
	ok, wait := p.Allow("10.0.0.1:5678") // same client, another port
	if ok || wait <= 0 || wait > 500*time.Millisecond {
		t.Fatalf("4th event: allowed %v, wait %s; want refused with a wait of at most 500ms", ok, wait)
	}
	if ok, _ := p.Allow("10.0.0.2:1"); !ok {
		t.Fatal("another client was refused")
	}
	for i := 0; i < 10; i++ {
		for _, a := range []string{"127.0.0.1:80", "[::1]:80", "[::ffff:127.0.0.2]:1"} {
			if ok, _ := p.Allow(a); !ok {
				t.Fatalf("exempt %s refused", a)
			}
		}
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := p.Allow("10.0.0.1:1"); !ok {
		t.Fatal("refused after waiting for a token")
	}
	// Quiet clients are forgotten once their buckets are full again.
	now = now.Add(10 * time.Second)
	p.Allow("10.0.0.3:1")
	if n := p.Len(); n != 1 {
		t.Errorf("%d addresses remembered after 10 s of quiet, want 1", n)
	}
	var nilLimit *PerAddress
	if ok, _ := nilLimit.Allow("x"); !ok || NewPerAddress(0, 5, nil) != nil {
		t.Error("no limit must allow everything")
	}
}

// A flood from more addresses than the table holds does not grow it
// without bound.
func TestPerAddressBounded(t *testing.T) {
	p := NewPerAddress(1, 1, nil)
	for i := 0; i < maxKeys+1000; i++ {
		p.Allow(fmt.Sprintf("10.%d.%d.%d:1", i>>16&255, i>>8&255, i&255))
	}
	if n := p.Len(); n > maxKeys {
		t.Errorf("%d addresses remembered, want at most %d", n, maxKeys)
	}
}

func TestKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:443":              "192.0.2.1",
		"192.0.2.1":                  "192.0.2.1",
		"[::ffff:192.0.2.1]:80":      "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:1":   "2001:db8:1:2::/64",
		"@":                          "@",
	} {
		if got := Key(in); got != want {
			t.Errorf("Key(%q) = %q, want %q", in, got, want)
		}
	}
}
