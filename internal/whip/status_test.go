package whip_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/testpeer"
)

// offerOf returns a gathered offer of a new VP8 publisher, which is then
// closed: an offer as an encoder would POST it.
func offerOf(t *testing.T) string {
	t.Helper()
	p, err := testpeer.NewPublisher(testpeer.PublisherOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	offer, err := p.GatheredOffer(within(t))
	if err != nil {
		t.Fatal(err)
	}
	return offer
}

// Every status of WHIP and WHEP on one server with no stream key: what a
// client gets for each thing it can get wrong, and that a refused WHIP
// request leaves no room behind.
func TestStatusCodes(t *testing.T) {
	srv := testpeer.StartServer(t, func(c *config.Config) {
		c.PresenterWait = 300 * time.Millisecond
		c.MaxMessageBytes = 16 << 10
	})
	c := srv.WHIP()
	offer := offerOf(t)

	t.Run("OPTIONS", func(t *testing.T) {
		for _, path := range []string{"/whip/r", "/whep/r", "/whip/r/0123456789abcdef0123456789abcdef"} {
			r := c.Do(http.MethodOptions, path, http.Header{
				"Origin":                         {"https://player.example.com"},
				"Access-Control-Request-Method":  {"POST"},
				"Access-Control-Request-Headers": {"authorization, content-type, if-match"},
			}, "")
			wantStatus(t, r, http.StatusNoContent)
			if got := r.Header.Get("Accept-Post"); got != "application/sdp" {
				t.Errorf("OPTIONS %s: Accept-Post %q", path, got)
			}
			h := r.Header
			if h.Get("Access-Control-Allow-Origin") != "*" ||
				!strings.Contains(h.Get("Access-Control-Allow-Methods"), "PATCH") ||
				!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") ||
				!strings.Contains(h.Get("Access-Control-Allow-Headers"), "If-Match") ||
				!strings.Contains(h.Get("Access-Control-Expose-Headers"), "Location") ||
				!strings.Contains(h.Get("Access-Control-Expose-Headers"), "ETag") {
				t.Errorf("OPTIONS %s: CORS headers %v", path, h)
			}
		}
	})

	t.Run("POST refused", func(t *testing.T) {
		wantRefused(t, c.Do(http.MethodPost, "/whip/r", http.Header{"Content-Type": {"text/plain"}}, offer),
			http.StatusUnsupportedMediaType, "application/sdp")
		wantRefused(t, c.Do(http.MethodPost, "/whep/r", nil, offer), http.StatusUnsupportedMediaType, "application/sdp")
		wantRefused(t, c.Post("/whip/r", "", ""), http.StatusBadRequest, "empty")
		wantRefused(t, c.Post("/whip/r", "v=0\r\nthis is not SDP\r\n", ""), http.StatusBadRequest, "SDP")
		wantRefused(t, c.Post("/whep/r", "hello", ""), http.StatusNotFound)
		noMedia := strings.NewReplacer("VP8/90000", "FOO/90000", "opus/48000/2", "BAR/48000/2").Replace(offer)
		wantRefused(t, c.Post("/whip/r", noMedia, ""), http.StatusBadRequest, "VP8")
		big := offer + strings.Repeat("a=x-padding:0123456789abcdef0123456789abcdef\r\n", 500)
		wantRefused(t, c.Post("/whip/r", big, ""), http.StatusRequestEntityTooLarge, "larger than")
		wantRefused(t, c.Post("/whep/nobody-here", offer, ""), http.StatusNotFound)
		if rs := rooms(t, srv); len(rs) != 0 {
			t.Errorf("refused WHIP requests left rooms: %+v", rs)
		}
		srv.WaitCounts(t, timeout, live.Counts{})
	})

	t.Run("409", func(t *testing.T) {
		// A room made over REST whose presenter has not offered yet: a
		// WHEP player is told to come back later.
		wantStatus(t, srv.REST.CreateRoom("early@example.com", "early", "Early", "https://example.com/early.png"), http.StatusCreated)
		r := c.Post("/whep/early", offer, "")
		wantRefused(t, r, http.StatusConflict, "not streaming")
		if ra := r.Header.Get("Retry-After"); ra == "" {
			t.Errorf("%s: no Retry-After", r)
		}
		// Its presenter is not a WHIP encoder's to take.
		wantRefused(t, c.Post("/whip/early", offer, ""), http.StatusConflict, "already")
		wantStatus(t, srv.REST.EndRoom("early@example.com"), http.StatusNoContent)
		srv.WaitCounts(t, timeout, live.Counts{})

		pub := testpeer.MustWHIPPublisher(t, srv, nil, "taken", testpeer.WHIPOptions{})
		wantRefused(t, c.Post("/whip/taken", offerOf(t), ""), http.StatusConflict, "already live")
		wantStatus(t, pub.Session.Delete(), http.StatusOK)
		srv.WaitCounts(t, timeout, live.Counts{})
	})

	t.Run("PATCH and DELETE", func(t *testing.T) {
		pub := testpeer.MustWHIPPublisher(t, srv, nil, "patched", testpeer.WHIPOptions{})
		v := testpeer.MustWHEPViewer(t, srv, nil, "patched", testpeer.WHIPOptions{})
		for _, s := range []*testpeer.WHIPSession{pub.Session, v.Session} {
			frag, err := s.TrickleFrag()
			if err != nil {
				t.Fatal(err)
			}
			etag := s.ETag()
			patch := func(h http.Header, body string) testpeer.Response {
				return c.Do(http.MethodPatch, s.Location, h, body)
			}
			sdpfrag := http.Header{"Content-Type": {"application/trickle-ice-sdpfrag"}}
			withTag := func(tag string) http.Header {
				return http.Header{"Content-Type": {"application/trickle-ice-sdpfrag"}, "If-Match": {tag}}
			}
			wantRefused(t, patch(http.Header{"Content-Type": {"application/sdp"}, "If-Match": {etag}}, frag),
				http.StatusUnsupportedMediaType, "trickle-ice-sdpfrag")
			wantRefused(t, patch(sdpfrag, frag), http.StatusPreconditionRequired, "If-Match")
			wantRefused(t, patch(withTag(`"0123456789abcdef"`), frag), http.StatusPreconditionFailed, "ETag")
			wantRefused(t, patch(withTag(etag), "hello"), http.StatusBadRequest, "sdpfrag")
			wantRefused(t, patch(withTag(etag), "a=candidate:not a candidate"), http.StatusBadRequest)
			noCreds := strings.NewReplacer("a=ice-ufrag:", "a=x-ufrag:", "a=ice-pwd:", "a=x-pwd:").Replace(frag)
			wantRefused(t, patch(withTag("*"), noCreds), http.StatusBadRequest, "ice-ufrag")
			wantStatus(t, patch(withTag(etag), frag), http.StatusNoContent)
			wantStatus(t, s.Patch(etag, frag), http.StatusNoContent)

			// A session URL is the room's and the kind's, and 128 random
			// bits: another id, room or kind is no session.
			m := locationRE.FindStringSubmatch(s.Location)
			other := "whep"
			if m[1] == "whep" {
				other = "whip"
			}
			for _, loc := range []string{
				"/" + m[1] + "/" + m[2] + "/" + strings.Repeat("0", 32),
				"/" + m[1] + "/" + m[2] + "/" + m[3][:31] + "x",
				"/" + m[1] + "/elsewhere/" + m[3],
				"/" + other + "/" + m[2] + "/" + m[3],
			} {
				wantRefused(t, c.Do(http.MethodPatch, loc, withTag(etag), frag), http.StatusNotFound)
				wantRefused(t, c.Do(http.MethodDelete, loc, nil, ""), http.StatusNotFound)
			}
		}
		wantStatus(t, v.Session.Delete(), http.StatusOK)
		wantRefused(t, v.Session.Delete(), http.StatusNotFound)
		wantStatus(t, pub.Session.Delete(), http.StatusOK)
		wantRefused(t, pub.Session.Delete(), http.StatusNotFound)
		srv.WaitCounts(t, timeout, live.Counts{})
	})
}

// Stream keys: a room's own key, else the server-wide key, as a bearer
// token on every WHIP request; WHEP is open and ignores tokens.
func TestStreamKeys(t *testing.T) {
	srv := testpeer.StartServer(t, func(c *config.Config) {
		c.StreamKey = "server-key"
		c.StreamKeys = map[string]string{"keyed": "room-key"}
	})
	c := srv.WHIP()
	offer := offerOf(t)
	for _, tc := range []struct{ room, token string }{
		{"keyed", ""}, {"keyed", "server-key"}, {"keyed", "wrong"}, {"other", ""}, {"other", "room-key"},
	} {
		r := c.Post("/whip/"+tc.room, offer, tc.token)
		wantRefused(t, r, http.StatusUnauthorized, "stream key")
		if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", r, r.Header.Get("WWW-Authenticate"))
		}
	}
	r := c.Do(http.MethodPost, "/whip/keyed", http.Header{"Content-Type": {"application/sdp"}, "Authorization": {"Basic cm9vbS1rZXk="}}, offer)
	wantRefused(t, r, http.StatusUnauthorized)
	if rs := rooms(t, srv); len(rs) != 0 {
		t.Fatalf("unauthorized WHIP requests made rooms: %+v", rs)
	}

	keyed := testpeer.MustWHIPPublisher(t, srv, nil, "keyed", testpeer.WHIPOptions{Token: "room-key"})
	other := testpeer.MustWHIPPublisher(t, srv, nil, "other", testpeer.WHIPOptions{Token: "server-key"})
	wantCreated(t, keyed.Session.Created, "whip", "keyed")
	// WHEP is open: with no token or any token.
	v1 := testpeer.MustWHEPViewer(t, srv, nil, "keyed", testpeer.WHIPOptions{})
	v2 := testpeer.MustWHEPViewer(t, srv, nil, "other", testpeer.WHIPOptions{Token: "anything"})
	wantMedia(t, "WHEP viewer of keyed", v1.Peer, 30)
	wantMedia(t, "WHEP viewer of other", v2.Peer, 30)

	// The token goes with PATCH (accepted) and DELETE (required for WHIP).
	frag, err := keyed.Session.TrickleFrag()
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, keyed.Session.Patch(keyed.Session.ETag(), frag), http.StatusNoContent)
	wantRefused(t, c.Do(http.MethodDelete, keyed.Session.Location, nil, ""), http.StatusUnauthorized, "stream key")
	wantRefused(t, c.Do(http.MethodDelete, keyed.Session.Location, http.Header{"Authorization": {"Bearer server-key"}}, ""),
		http.StatusUnauthorized)
	wantStatus(t, v2.Session.Delete(), http.StatusOK)
	wantStatus(t, keyed.Session.Delete(), http.StatusOK)
	wantStatus(t, other.Session.Delete(), http.StatusOK)
	waitNoRooms(t, srv)
	srv.WaitCounts(t, timeout, live.Counts{})
}
