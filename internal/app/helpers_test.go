package app_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/testpeer"
)

// timeout is the deadline of every wait: generous, because the tests must
// pass on a loaded two-core machine under the race detector. A healthy
// server meets it by a wide margin; only a broken one waits it out.
const timeout = 20 * time.Second

// within returns a context that ends after timeout or with the test.
func within(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// wantStatus fails the test unless r has the status.
func wantStatus(t testing.TB, r testpeer.Response, status int) {
	t.Helper()
	if err := r.Want(status); err != nil {
		t.Fatal(err)
	}
}

// wantAPIError fails the test unless r is the protocol's error with this
// status, name and code, and a message that starts with the protocol's.
func wantAPIError(t testing.TB, r testpeer.Response, status int, name string, code int, message string) {
	t.Helper()
	if r.Err != nil || r.Status != status {
		t.Errorf("%s: want status %d", r, status)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", r, ct)
	}
	e := r.APIError()
	if e.Name != name || e.Code != code || !strings.HasPrefix(e.Message, message) {
		t.Errorf("%s: want {name %s, code %d, message %q…}", r, name, code, message)
	}
}

// rooms returns GET /room/list.
func rooms(t testing.TB, s *testpeer.Server) []testpeer.Room {
	t.Helper()
	rs, err := s.REST.Rooms()
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// pipelines returns GET /media/pipelines.
func pipelines(t testing.TB, s *testpeer.Server) []testpeer.Pipeline {
	t.Helper()
	ps, err := s.REST.Pipelines()
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// waitRoomCount waits until the room is listed with this count.
func waitRoomCount(t testing.TB, s *testpeer.Server, roomID, count string) {
	t.Helper()
	var last []testpeer.Room
	ok := testpeer.Eventually(timeout, func() bool {
		rs, err := s.REST.Rooms()
		last = rs
		if err != nil {
			return false
		}
		for _, r := range rs {
			if r.RoomID == roomID {
				return r.Count == count
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("room %s: want count %q, /room/list is %+v", roomID, count, last)
	}
}

// waitNoRooms waits until /room/list is empty.
func waitNoRooms(t testing.TB, s *testpeer.Server) {
	t.Helper()
	var last []testpeer.Room
	if !testpeer.Eventually(timeout, func() bool {
		rs, err := s.REST.Rooms()
		last = rs
		return err == nil && len(rs) == 0
	}) {
		t.Fatalf("/room/list is %+v, want []", last)
	}
}

// wantStop waits for the client's stopCommunication with this message.
func wantStop(t testing.TB, ws *testpeer.WS, who, message string) {
	t.Helper()
	m, err := ws.NextWithin(timeout, testpeer.IDStop)
	if err != nil {
		t.Fatalf("%s: %v", who, err)
	}
	if m.Message != message {
		t.Errorf("%s: stopCommunication %q, want %q", who, m.Message, message)
	}
}

// wantMedia waits until the viewer has received at least frames whole
// frames (a keyframe among them) and audio, all intact.
func wantMedia(t testing.TB, v *testpeer.Viewer, frames int) {
	t.Helper()
	if err := v.Peer.WaitMedia(within(t), frames); err != nil {
		t.Fatalf("viewer %s: %v", v.Email, err)
	}
}

// wantMoreMedia waits until the viewer has received frames more whole
// frames and more audio: the broadcast still reaches it.
func wantMoreMedia(t testing.TB, v *testpeer.Viewer, frames int) {
	t.Helper()
	if err := v.Peer.WaitMoreMedia(within(t), frames); err != nil {
		t.Fatalf("viewer %s: %v", v.Email, err)
	}
}
