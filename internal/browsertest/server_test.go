package browsertest_test

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/app"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/testpeer"
)

// server is a real onair, as cmd/onair builds it, on 127.0.0.1.
type server struct {
	app *app.App
	url string // https://127.0.0.1:port
	ts  *testpeer.Server
}

// startServer runs onair with extra flags over testpeer's loopback defaults
// (ICE on 127.0.0.1 only, which is all a loopback-only namespace has). When
// the test ends the server is shut down and checked for anything left.
func startServer(t *testing.T, flags ...string) *server {
	t.Helper()
	ts := testpeer.StartServerArgs(t, append([]string{"-reap-interval", "0"}, flags...), nil)
	return &server{app: ts.App, url: ts.Root, ts: ts}
}

// waitEmpty waits until the server holds nothing: no room, viewer, session,
// pipeline, endpoint or WebSocket.
func (s *server) waitEmpty(t *testing.T, within time.Duration) {
	t.Helper()
	var c live.Counts
	var ws int
	ok := waitFor(within, func() bool {
		c, ws = s.app.Service().Counts(), s.app.WebSockets()
		return c == (live.Counts{}) && ws == 0
	})
	if !ok {
		t.Fatalf("server not back to zero after %v: %+v, %d WebSockets", within, c, ws)
	}
	t.Logf("server back to zero: %+v, %d WebSockets", c, ws)
}

// waitFor polls cond until it holds or within has passed, and reports
// whether it held.
var waitFor = testpeer.Eventually

// rest calls the server's REST API as a client other than the browser.
func (s *server) rest(t *testing.T, method, path, email, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if email != "" {
		req.Header.Set("email", email)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the server's self-signed certificate
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// endpoints decodes GET /media/endpoints/presenter, the presenter's media
// endpoints and their stats, into eps (a pointer to a slice of the fields
// the test reads).
func (s *server) endpoints(t *testing.T, presenter string, eps any) {
	t.Helper()
	status, body := s.rest(t, "GET", "/signal/media/endpoints/"+url.PathEscape(presenter), "", "")
	if err := json.Unmarshal([]byte(body), eps); status != 200 || err != nil {
		t.Fatalf("GET /media/endpoints: %d %s (%v)", status, body, err)
	}
}
