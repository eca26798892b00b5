package auth_test

import (
	"testing"
	"time"

	"github.com/onair-live/onair/internal/auth"
)

// FuzzVerify: no input makes Verify panic, and whatever it accepts was
// signed with the secret (the fuzzer cannot forge one) or is a seed.
func FuzzVerify(f *testing.F) {
	v, err := auth.NewVerifier([][]byte{secret})
	if err != nil {
		f.Fatal(err)
	}
	v = v.WithClock(func() time.Time { return t0 })
	good, err := auth.Mint(secret, auth.Claims{Subject: "alice", Grants: []string{"publish"}, Room: "r", ExpiresAt: t0.Add(time.Hour).Unix()})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
	f.Add(good[:len(good)-3] + "AAA")
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := v.Verify(tok)
		if err == nil && p.Subject == "" {
			t.Fatalf("accepted %q with no subject", tok)
		}
		if err == nil && tok != good {
			t.Fatalf("accepted a token that was never minted: %q", tok)
		}
	})
}
