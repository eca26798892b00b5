package whip_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/onair-live/onair/internal/testpeer"
)

// The helpers these tests share with the other packages' (see testpeer's
// want.go), by their short names here.
const timeout = testpeer.Timeout

var (
	within        = testpeer.Within
	wantStatus    = testpeer.WantStatus
	wantMedia     = testpeer.WantMedia
	wantMoreMedia = testpeer.WantMoreMedia
)

// wantRefused checks a refusal: its status, and a plain-text reason that
// contains every one of words.
func wantRefused(t testing.TB, r testpeer.Response, status int, words ...string) {
	t.Helper()
	if r.Err != nil || r.Status != status {
		t.Errorf("%s: want status %d", r, status)
		return
	}
	body := strings.TrimSpace(string(r.Body))
	if body == "" {
		t.Errorf("%s: no reason given", r)
	}
	for _, w := range words {
		if !strings.Contains(strings.ToLower(body), strings.ToLower(w)) {
			t.Errorf("%s: the reason does not say %q", r, w)
		}
	}
}

// locationRE is a session URL: the kind, the room, then 128 random bits.
var locationRE = regexp.MustCompile(`^/(whip|whep)/([^/]+)/([0-9a-f]{32})$`)

// wantCreated checks a 201 of a WHIP or WHEP POST: an SDP answer with the
// server's candidates (no trickle from the server), a session URL under the
// room with 128 random bits, and an ETag.
func wantCreated(t testing.TB, r testpeer.Response, kind, room string) {
	t.Helper()
	wantStatus(t, r, http.StatusCreated)
	if ct := r.Header.Get("Content-Type"); ct != "application/sdp" {
		t.Errorf("%s: Content-Type %q, want application/sdp", r.Path, ct)
	}
	body := string(r.Body)
	if !strings.HasPrefix(body, "v=0") || !strings.Contains(body, "a=candidate:") {
		t.Errorf("%s: the answer is not SDP with candidates:\n%s", r.Path, body)
	}
	m := locationRE.FindStringSubmatch(r.Header.Get("Location"))
	if m == nil || m[1] != kind || m[2] != room {
		t.Errorf("%s: Location %q, want /%s/%s/<32 hex digits>", r.Path, r.Header.Get("Location"), kind, room)
	}
	if et := r.Header.Get("ETag"); len(et) < 3 || et[0] != '"' || et[len(et)-1] != '"' {
		t.Errorf("%s: ETag %q, want a quoted entity tag", r.Path, et)
	}
}

// rooms returns GET /signal/room/list.
func rooms(t testing.TB, s *testpeer.Server) []testpeer.Room {
	t.Helper()
	return s.Rooms(t)
}

// waitRoom waits until the room list shows room as want.
func waitRoom(t testing.TB, s *testpeer.Server, want testpeer.Room) {
	t.Helper()
	var last []testpeer.Room
	if !testpeer.Eventually(timeout, func() bool {
		rs, err := s.REST.Rooms()
		last = rs
		for _, r := range rs {
			if r == want {
				return err == nil
			}
		}
		return false
	}) {
		t.Fatalf("/room/list is %+v, want %+v in it", last, want)
	}
}

// waitNoRooms waits until /room/list is empty.
func waitNoRooms(t testing.TB, s *testpeer.Server) {
	t.Helper()
	s.WaitNoRooms(t)
}

// wantStop waits for a WebSocket viewer's stopCommunication.
func wantStop(t testing.TB, v *testpeer.Viewer) {
	t.Helper()
	testpeer.WantStop(t, v.WS, v.Email, "Presenter stopped streaming.")
}

// sdpHas reports whether an SDP has a line that starts with prefix.
func sdpHas(sdp, prefix string) bool {
	for _, l := range strings.Split(sdp, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			return true
		}
	}
	return false
}
