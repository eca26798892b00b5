package whip_test

import (
	"net/http"
	"path"
	"strings"
	"testing"

	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/testpeer"
)

// A whole WHIP and WHEP session (publish, watch, trickle, ICE restart,
// a PATCH refused, DELETE), logged at debug level: the log names each
// session by its tag, never by its id, the secret part of its URL.
func TestSessionIDsStayOutOfLogs(t *testing.T) {
	srv := testpeer.StartServer(t, nil)
	pub := testpeer.MustWHIPPublisher(t, srv, nil, "logs", testpeer.WHIPOptions{})
	view := testpeer.MustWHEPViewer(t, srv, nil, "logs", testpeer.WHIPOptions{})
	wantMedia(t, "WHEP viewer", view.Peer, 5)
	for _, s := range []*testpeer.WHIPSession{pub.Session, view.Session} {
		trickle, err := s.TrickleFrag()
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, s.Patch(s.ETag(), trickle), http.StatusNoContent)
		wantRefused(t, s.Patch(`"stale"`, trickle), http.StatusPreconditionFailed)
		if _, err := s.RestartICE(within(t)); err != nil {
			t.Fatal(err)
		}
	}
	wantStatus(t, view.Session.Delete(), http.StatusOK)
	wantStatus(t, pub.Session.Delete(), http.StatusOK)
	waitNoRooms(t, srv)

	log := srv.Log()
	for who, s := range map[string]*testpeer.WHIPSession{"WHIP": pub.Session, "WHEP": view.Session} {
		id := path.Base(s.Location)
		if len(id) < 32 {
			t.Fatalf("%s session URL %q has no id", who, s.Location)
		}
		if strings.Contains(log, id) {
			t.Errorf("the %s session's id %s is in the log", who, id)
		}
		if !strings.Contains(log, "session="+live.Tag(id)) {
			t.Errorf("the %s session's tag %s is not in the log", who, live.Tag(id))
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", log)
	}
}
