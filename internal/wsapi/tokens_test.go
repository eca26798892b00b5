package wsapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/live"
)

// A socket's token is checked again at each offer: once it has expired (on
// the verifier's clock, before the socket's own timer has closed it), the
// offer is refused, saying so; after a token message with a fresh token of
// the same subject, offers are taken again. A fresh token of another
// subject is refused and changes nothing.
func TestTokenRecheckedAtEachOffer(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Now()
	clock := now
	v, err := auth.NewVerifier([][]byte{key})
	if err != nil {
		t.Fatal(err)
	}
	authn := auth.NewAuthenticator(v.WithClock(func() time.Time { return clock }))
	mint := func(sub string, exp time.Time) string {
		tok, err := auth.Mint(key, auth.Claims{Subject: sub, Grants: []string{"view"}, ExpiresAt: exp.Unix()})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	accept := func(live.Session, auth.Principal, live.Offer) (string, error) { return "v=0 answer", nil }
	srv := NewServer(fakeBroadcasts{present: accept, view: accept},
		Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Auth: authn})
	first := mint("vic@x", now.Add(time.Hour))
	who, err := authn.Authenticate(first, "")
	if err != nil {
		t.Fatal(err)
	}
	sess := newSession(srv, nil, "tokens", "127.0.0.1:1", who, newHeard())
	sess.token = first
	next := func() responseMsg {
		t.Helper()
		select {
		case b := <-sess.out:
			var m responseMsg
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			return m
		default:
			t.Fatal("no answer")
			return responseMsg{}
		}
	}
	offer := `{"id":"viewer","roomId":"r","sdpOffer":"v=0"}`

	clock = now.Add(2 * time.Hour) // the first token has expired
	sess.handle(context.Background(), []byte(offer))
	if m := next(); m.Response != "rejected" || !strings.Contains(m.Message, "expired") {
		t.Errorf("an offer with an expired token: %+v, want rejected as expired", m)
	}
	sess.handle(context.Background(), []byte(`{"id":"token","token":"`+mint("val@x", now.Add(3*time.Hour))+`"}`))
	if m := next(); m.ID != idTokenResponse || m.Response != "rejected" {
		t.Errorf("a token of another subject: %+v, want rejected", m)
	}
	sess.handle(context.Background(), []byte(`{"id":"token","token":"`+mint("vic@x", now.Add(3*time.Hour))+`"}`))
	if m := next(); m.ID != idTokenResponse || m.Response != "accepted" {
		t.Fatalf("a fresh token: %+v, want accepted", m)
	}
	sess.handle(context.Background(), []byte(offer))
	if m := next(); m.Response != "accepted" {
		t.Errorf("an offer after the refresh: %+v, want accepted", m)
	}
	sess.mu.Lock()
	sess.expiry.Stop()
	sess.mu.Unlock()
}
