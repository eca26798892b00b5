package whip_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/testpeer"
)

const testSecret = "0123456789abcdef0123456789abcdef"

func mintToken(t testing.TB, sub, room string, grants ...string) string {
	t.Helper()
	tok, err := auth.Mint([]byte(testSecret), auth.Claims{Subject: sub, Grants: grants, Room: room,
		ExpiresAt: time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// offerSDP is a publisher's or viewer's gathered offer, for requests the
// server refuses before it negotiates.
func offerSDP(t testing.TB, publisher bool) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if publisher {
		p, err := testpeer.NewPublisher(testpeer.PublisherOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		o, err := p.GatheredOffer(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	v, err := testpeer.NewViewerPeer()
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	o, err := v.GatheredOffer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// With tokens on, WHIP and WHEP take them as Bearer: none or a bad one is
// 401, one without the grant (or for another room) 403; the token's
// subject is the publisher or viewer, and only that subject may PATCH or
// DELETE its session.
func TestTokensOnWHIPAndWHEP(t *testing.T) {
	srv := testpeer.StartServer(t, func(c *config.Config) { c.AuthKeys = [][]byte{[]byte(testSecret)} })
	const room = "stage"
	c := srv.WHIP()
	pubOffer, viewOffer := offerSDP(t, true), offerSDP(t, false)

	for what, tok := range map[string]string{"no token": "", "not a token": "stream-key", "wrong room": mintToken(t, "enc", "other", "publish"),
		"view only": mintToken(t, "enc", room, "view")} {
		r := c.Post("/whip/"+room, pubOffer, tok)
		want := http.StatusForbidden
		if what == "no token" || what == "not a token" {
			want = http.StatusUnauthorized
			if r.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("WHIP %s: no WWW-Authenticate", what)
			}
		}
		wantRefused(t, r, want)
	}
	encTok := mintToken(t, "encoder@example.com", room, "publish")
	pub := testpeer.MustWHIPPublisher(t, srv, nil, room, testpeer.WHIPOptions{Token: encTok})
	wantCreated(t, pub.Session.Created, "whip", room)

	// WHEP: no token 401, a publish-only token 403, a view token watches
	// (as Bearer, or as ?token= for players that cannot set headers).
	wantRefused(t, c.Post("/whep/"+room, viewOffer, ""), http.StatusUnauthorized)
	wantRefused(t, c.Post("/whep/"+room, viewOffer, mintToken(t, "enc2", "", "publish")), http.StatusForbidden)
	vicTok := mintToken(t, "vic@example.com", "", "view")
	vic := testpeer.MustWHEPViewer(t, srv, nil, room, testpeer.WHIPOptions{Token: vicTok})
	wantMedia(t, "WHEP viewer", vic.Peer, 30)
	amy := testpeer.MustWHEPViewer(t, srv, nil, room, testpeer.WHIPOptions{
		Query: url.Values{"token": {mintToken(t, "amy@example.com", room, "view")}}})
	wantMedia(t, "WHEP viewer with ?token=", amy.Peer, 30)
	eps, err := srv.REST.WithToken(mintToken(t, "ops", "", "admin")).Endpoints("encoder@example.com")
	if err != nil || len(eps) != 3 {
		t.Fatalf("endpoints: %+v, %v", eps, err)
	}
	names := map[string]bool{}
	for _, ep := range eps {
		names[ep.EndpointName] = true
	}
	for _, n := range []string{"presenter:encoder@example.com", "viewer:vic@example.com", "viewer:amy@example.com"} {
		if !names[n] {
			t.Errorf("no endpoint %s: the token's subject names the peer (%v)", n, names)
		}
	}

	// PATCH and DELETE: no token 401, another subject's 403; the broadcast
	// does not notice.
	path, _ := url.Parse(pub.Session.URL)
	sdpfrag := http.Header{"Content-Type": {"application/trickle-ice-sdpfrag"}, "If-Match": {pub.Session.ETag()}}
	wantRefused(t, c.Do(http.MethodPatch, path.Path, sdpfrag, "a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n"), http.StatusUnauthorized)
	for _, m := range []string{http.MethodPatch, http.MethodDelete} {
		h := sdpfrag.Clone()
		h.Set("Authorization", "Bearer "+vicTok)
		wantRefused(t, c.Do(m, path.Path, h, "a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n"), http.StatusForbidden)
	}
	wantRefused(t, c.Do(http.MethodDelete, path.Path, nil, ""), http.StatusUnauthorized)
	wantMoreMedia(t, "WHEP viewer", vic.Peer, 30)

	// The viewer leaves with its own token; the encoder ends with its own.
	wantStatus(t, vic.Session.Delete(), http.StatusOK)
	wantStatus(t, pub.Session.Delete(), http.StatusOK)
	srv.WaitCounts(t, timeout, live.Counts{})
}
