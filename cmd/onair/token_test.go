package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/auth"
)

func TestMintToken(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	now := time.Now()
	var out, errOut bytes.Buffer
	env := func(k string) string {
		if k == "ONAIR_AUTH_SECRET" {
			return secret
		}
		return ""
	}
	code := mintToken([]string{"-sub", "ann@example.com", "-grant", "publish", "-room", "concert", "-ttl", "1h"}, env, now, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	v, err := auth.NewVerifier([][]byte{[]byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "ann@example.com" || !p.CanPublish("concert") || p.CanPublish("other") || p.CanView("concert") {
		t.Errorf("principal %+v", p)
	}
	if _, err := v.WithClock(func() time.Time { return now.Add(2 * time.Hour) }).Verify(strings.TrimSpace(out.String())); err == nil {
		t.Error("a 1h token verifies 2h later")
	}

	out.Reset()
	errOut.Reset()
	if code := mintToken([]string{"-sub", "ann"}, env, now, &out, &errOut); code != 2 || out.Len() != 0 || !strings.Contains(errOut.String(), "-grant") {
		t.Errorf("without -grant: exit %d, out %q, err %q", code, out.String(), errOut.String())
	}
}
