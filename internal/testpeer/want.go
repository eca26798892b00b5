package testpeer

import (
	"context"
	"testing"
	"time"
)

// Timeout bounds every wait of the tests: generous, because they must pass
// on a loaded two-core machine under the race detector. A healthy server
// meets it by a wide margin; only a broken one waits it out.
const Timeout = 20 * time.Second

// Within returns a context that ends after Timeout or with the test.
func Within(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

// WaitFor polls cond until it holds, failing the test if it does not within
// timeout; what says what was awaited.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Eventually(timeout, cond) {
		t.Fatalf("%s: not within %s", what, timeout)
	}
}

// WantStatus fails the test unless r has the status.
func WantStatus(t testing.TB, r Response, status int) {
	t.Helper()
	if err := r.Want(status); err != nil {
		t.Fatal(err)
	}
}

// Rooms returns GET /room/list, failing the test if it fails.
func (s *Server) Rooms(t testing.TB) []Room {
	t.Helper()
	rs, err := s.REST.Rooms()
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// WaitNoRooms waits until /room/list is empty.
func (s *Server) WaitNoRooms(t testing.TB) {
	t.Helper()
	var last []Room
	if !Eventually(Timeout, func() bool {
		rs, err := s.REST.Rooms()
		last = rs
		return err == nil && len(rs) == 0
	}) {
		t.Fatalf("/room/list is %+v, want []", last)
	}
}

// WantMedia waits until the viewer peer has received frames whole frames (a
// keyframe among them) and audio, every byte as sent; who names it.
func WantMedia(t testing.TB, who string, v *ViewerPeer, frames int) {
	t.Helper()
	if err := v.WaitMedia(Within(t), frames); err != nil {
		t.Fatalf("%s: %v", who, err)
	}
}

// WantMoreMedia waits until the viewer peer has received frames more whole
// frames and more audio: the broadcast still reaches it.
func WantMoreMedia(t testing.TB, who string, v *ViewerPeer, frames int) {
	t.Helper()
	if err := v.WaitMoreMedia(Within(t), frames); err != nil {
		t.Fatalf("%s: %v", who, err)
	}
}

// WantStop waits for a WebSocket client's stopCommunication with this
// message; who names the client.
func WantStop(t testing.TB, ws *WS, who, message string) {
	t.Helper()
	m, err := ws.NextWithin(Timeout, IDStop)
	if err != nil {
		t.Fatalf("%s: %v", who, err)
	}
	if m.Message != message {
		t.Errorf("%s: stopCommunication %q, want %q", who, m.Message, message)
	}
}
