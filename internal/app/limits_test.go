package app_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/testpeer"
)

// wantRejections checks onair_rejections_total for each reason: at least
// the count given.
func wantRejections(t *testing.T, srv *testpeer.Server, atLeast map[string]float64) {
	t.Helper()
	fams := scrapeMetrics(t, srv)
	for reason, n := range atLeast {
		got, ok := metricValue(fams, "onair_rejections_total", "reason", reason)
		if !ok || got < n {
			t.Errorf("onair_rejections_total{reason=%q} = %v (present %v), want at least %v", reason, got, ok, n)
		}
	}
}

// New sessions from one address are limited: past the burst, POST
// /room/live and /room/view, the WebSocket upgrade and WHIP/WHEP POSTs get
// 429 with Retry-After; other requests are not limited.
func TestSessionsPerAddress(t *testing.T) {
	srv := testpeer.StartServer(t, func(c *config.Config) {
		c.MaxSessionsPerSecond = 0.1 // one, then one per 10 s
		c.SessionsLimitExempt = nil  // loopback, where the test runs, is exempt by default
	})
	wantStatus(t, srv.REST.CreateRoom("ann@example.com", "ann", "t", "p"), http.StatusCreated)

	r := srv.REST.Join("vic@example.com", "ann")
	wantAPIError(t, r, http.StatusTooManyRequests, "TOO_MANY_REQUESTS", 4290, "Too many requests: slow down.")
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 || s > 10 {
		t.Errorf("Retry-After %q, want 1 to 10 seconds", r.Header.Get("Retry-After"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if c, resp, err := websocket.Dial(ctx, srv.WSURL, nil); err == nil {
		c.CloseNow()
		t.Error("WebSocket upgrade over the limit succeeded")
	} else if resp == nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("WebSocket upgrade over the limit: %v, want 429 with Retry-After", err)
	}
	whep := srv.WHIP().Post("/whep/ann", viewerOfferSDP(t), "")
	if whep.Status != http.StatusTooManyRequests || !strings.HasPrefix(whep.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("WHEP over the limit: %s (%s), want 429 in plain text", whep, whep.Header.Get("Content-Type"))
	}
	// Listing, leaving and ending are not sessions.
	if _, err := srv.REST.Rooms(); err != nil {
		t.Error(err)
	}
	wantStatus(t, srv.REST.EndRoom("ann@example.com"), http.StatusNoContent)
	wantRejections(t, srv, map[string]float64{"session_rate": 3})

	// Loopback is exempt by default (tools on the machine, a local proxy).
	local := testpeer.StartServer(t, func(c *config.Config) { c.MaxSessionsPerSecond = 0.1 })
	wantStatus(t, local.REST.CreateRoom("ann@example.com", "ann", "t", "p"), http.StatusCreated)
	for _, v := range []string{"v1", "v2", "v3"} {
		wantStatus(t, local.REST.Join(v, "ann"), http.StatusCreated)
	}
	wantStatus(t, local.REST.EndRoom("ann@example.com"), http.StatusNoContent)
}

// A WebSocket over its message rate gets an error, and one that keeps
// flooding is closed with 1008 (policy violation); others are untouched.
func TestMessageRate(t *testing.T) {
	srv := testpeer.StartServer(t, func(c *config.Config) { c.MaxMessagesPerSecond = 2 }) // bursts of 4
	calm := testpeer.MustWS(t, srv)
	flood := testpeer.MustWS(t, srv)
	sent := 0
	for ; sent < 10000; sent++ {
		if err := flood.SendText(`{"id":`); err != nil {
			break // closed by the server
		}
		select {
		case <-flood.Done():
		default:
			continue
		}
		break
	}
	if err := flood.WaitClosed(timeout); err != nil {
		t.Fatalf("after %d messages: %v", sent, err)
	}
	if got := flood.CloseStatus(); got != websocket.StatusPolicyViolation {
		t.Errorf("close status %v, want %v", got, websocket.StatusPolicyViolation)
	}
	found := false
	for _, m := range flood.Received(testpeer.IDError) {
		found = found || strings.Contains(m.Message, "too many messages")
	}
	if !found {
		t.Errorf("no 'too many messages' error before the close: %v", flood.Received(testpeer.IDError))
	}
	if err := calm.SendText(`{"id":"marker"}`); err != nil {
		t.Fatal(err)
	}
	wantError(t, calm, "another connection", `unknown message id "marker"`)
	wantRejections(t, srv, map[string]float64{"message_rate": 4, "bad_message": 4})
}

// Rooms per server, viewers per room and candidates per session are
// bounded, each with a clear refusal, and counted.
func TestRoomViewerAndCandidateLimits(t *testing.T) {
	srv := testpeer.StartServer(t, func(c *config.Config) {
		c.MaxRooms, c.MaxViewersPerRoom, c.MaxCandidates = 1, 1, 5
	})
	const room = "ann@example.com"
	testpeer.MustPresenter(t, srv, "ann@example.com", room, testpeer.PresenterOptions{})

	wantAPIError(t, srv.REST.CreateRoom("bob@example.com", "bob", "t", "p"), http.StatusServiceUnavailable,
		"TOO_MANY_ROOMS", 5031, "The server has as many rooms as it may hold.")
	whip := srv.WHIP().Post("/whip/bob", viewerOfferSDP(t), "")
	wantStatus(t, whip, http.StatusServiceUnavailable)

	wantStatus(t, srv.REST.Join("vic@example.com", room), http.StatusCreated)
	wantAPIError(t, srv.REST.Join("eve@example.com", room), http.StatusTooManyRequests, "ROOM_FULL", 4291, "The room is full.")
	wantStatus(t, srv.WHIP().Post("/whep/"+room, viewerOfferSDP(t), ""), http.StatusTooManyRequests)

	// vic signals (no media) and trickles: past 5 candidates, refused.
	vic := testpeer.MustWS(t, srv)
	send(t, vic, testpeer.OfferMessage{ID: testpeer.IDViewer, RoomID: room, Email: "vic@example.com", SDPOffer: viewerOfferSDP(t)})
	if m, err := vic.NextWithin(timeout, testpeer.IDViewerResponse); err != nil || m.Response != "accepted" {
		t.Fatalf("vic's offer: %+v, %v", m, err)
	}
	for i := 0; i < 6; i++ {
		c := webrtc.ICECandidateInit{Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 " + strconv.Itoa(9000+i) + " typ host"}
		if err := vic.SendCandidate(room, c); err != nil {
			t.Fatal(err)
		}
	}
	wantError(t, vic, "the 6th candidate", "TOO_MANY_CANDIDATES")
	if n := len(vic.Received(testpeer.IDError)); n != 1 {
		t.Errorf("%d errors for 6 candidates, want 1 (the 6th)", n)
	}
	wantRejections(t, srv, map[string]float64{"too_many_rooms": 2, "room_full": 2, "too_many_candidates": 1})
}

// Bodies and messages over -max-message-bytes are refused, and counted.
func TestOversizedBodies(t *testing.T) {
	srv := testpeer.StartServer(t, func(c *config.Config) { c.MaxMessageBytes = 4096 })
	big := `{"roomId":"` + strings.Repeat("x", 8192) + `","title":"t","profileUrl":"p"}`
	wantAPIError(t, srv.REST.Do(http.MethodPost, "/room/live", "ann@example.com", big), http.StatusBadRequest, "BAD_REQUEST", 4000, "")
	wantStatus(t, srv.WHIP().Post("/whip/x", "v=0\r\n"+strings.Repeat("a=x\r\n", 2000), ""), http.StatusRequestEntityTooLarge)
	ws := testpeer.MustWS(t, srv)
	if err := ws.SendText(`{"id":"viewer","sdpOffer":"` + strings.Repeat("x", 8192) + `"}`); err != nil {
		t.Fatal(err)
	}
	wantError(t, ws, "an oversized message", "larger than 4096 bytes")
	wantRejections(t, srv, map[string]float64{"body_too_large": 2, "message_too_large": 1})
	srv.WaitCounts(t, timeout, live.Counts{})
}

// originGet sends GET path with an Origin header.
func originGet(t *testing.T, url, origin string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", origin)
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// Only the allowed origins (and the server's own) may call the API or open
// the WebSocket; CORS answers name the origin. By default any origin may.
func TestAllowedOrigins(t *testing.T) {
	srv := testpeer.StartServer(t, func(c *config.Config) {
		c.AllowedOrigins = []string{"app.example.com", "https://*.example.org"}
	})
	list := srv.URL + "/room/list"
	self := strings.TrimSuffix(srv.URL, srv.Config.BasePath)
	for origin, allowed := range map[string]bool{
		"https://app.example.com":  true,
		"http://app.example.com":   true,
		"https://tv.example.org":   true,
		"http://tv.example.org":    false, // the pattern names the scheme
		"https://evil.example.com": false,
		"null":                     false,
		self:                       true,
	} {
		resp := originGet(t, list, origin)
		switch {
		case allowed && (resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != origin ||
			resp.Header.Get("Vary") != "Origin"):
			t.Errorf("origin %s: %s, Allow-Origin %q, Vary %q; want 200 naming it", origin, resp.Status,
				resp.Header.Get("Access-Control-Allow-Origin"), resp.Header.Get("Vary"))
		case !allowed && (resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != ""):
			t.Errorf("origin %s: %s, Allow-Origin %q; want 403 without CORS headers", origin, resp.Status,
				resp.Header.Get("Access-Control-Allow-Origin"))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if c, resp, err := websocket.Dial(ctx, srv.WSURL, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example.com"}}}); err == nil {
		c.CloseNow()
		t.Error("a WebSocket from a refused origin opened")
	} else if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("WebSocket from a refused origin: %v, want 403", err)
	}
	c, _, err := websocket.Dial(ctx, srv.WSURL, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://app.example.com"}}})
	if err != nil {
		t.Fatalf("WebSocket from an allowed origin: %v", err)
	}
	c.CloseNow()
	wantRejections(t, srv, map[string]float64{"origin": 4})

	open := testpeer.StartServer(t, nil)
	if resp := originGet(t, open.URL+"/room/list", "https://anywhere.example"); resp.StatusCode != http.StatusOK ||
		resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("default origins: %s, Allow-Origin %q; want 200 with *", resp.Status, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}
