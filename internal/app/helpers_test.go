package app_test

import (
	"strings"
	"testing"

	"github.com/onair-live/onair/internal/testpeer"
)

// The helpers these tests share with the other packages' (see testpeer's
// want.go), by their short names here.
const timeout = testpeer.Timeout

var (
	within     = testpeer.Within
	wantStatus = testpeer.WantStatus
	wantStop   = testpeer.WantStop
)

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
	return s.Rooms(t)
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
	s.WaitNoRooms(t)
}

// wantMedia waits until the viewer has received at least frames whole
// frames (a keyframe among them) and audio, all intact.
func wantMedia(t testing.TB, v *testpeer.Viewer, frames int) {
	t.Helper()
	testpeer.WantMedia(t, "viewer "+v.Email, v.Peer, frames)
}

// wantMoreMedia waits until the viewer has received frames more whole
// frames and more audio: the broadcast still reaches it.
func wantMoreMedia(t testing.TB, v *testpeer.Viewer, frames int) {
	t.Helper()
	testpeer.WantMoreMedia(t, "viewer "+v.Email, v.Peer, frames)
}
