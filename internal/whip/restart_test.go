package whip_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/testpeer"
)

// restart restarts ICE on a session as a WHIP/WHEP client does and checks
// the server's side of it: 200 with an sdpfrag of new credentials and its
// candidates, a new ETag; the peer reconnects over one of them; the old
// ETag is then refused with 412 and the new one taken. A presenter's
// candidates are new sockets; a viewer's are its media writer's sockets,
// the same before and after (shared).
func restart(t *testing.T, who, ifMatch string, shared bool, s *testpeer.WHIPSession, selected func() (string, error), connected func() error) {
	t.Helper()
	oldTag, oldAnswer := s.ETag(), s.Answer()
	start := time.Now()
	r, err := s.RestartICEIfMatch(within(t), ifMatch)
	if err != nil {
		t.Fatalf("%s: ICE restart: %v", who, err)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/trickle-ice-sdpfrag" {
		t.Errorf("%s: ICE restart answered with Content-Type %q", who, ct)
	}
	newTag := r.Header.Get("ETag")
	if newTag == "" || newTag == oldTag {
		t.Errorf("%s: ETag %q after the restart, was %q: want a new one", who, newTag, oldTag)
	}
	frag := string(r.Body)
	if !sdpHas(frag, "a=ice-ufrag:") || !sdpHas(frag, "a=ice-pwd:") || sdpHas(frag, "v=0") {
		t.Errorf("%s: the restart's answer is not an sdpfrag with credentials:\n%s", who, frag)
	}
	newAddrs := testpeer.CandidateAddrs(frag)
	if len(newAddrs) == 0 {
		t.Errorf("%s: no candidate in the restart's answer:\n%s", who, frag)
	}
	for _, a := range newAddrs {
		if slices.Contains(testpeer.CandidateAddrs(oldAnswer), a) != shared {
			t.Errorf("%s: candidate %s was in the answer before the restart: %v, want %v", who, a, !shared, shared)
		}
	}
	if err := connected(); err != nil {
		t.Fatalf("%s after the ICE restart: %v", who, err)
	}
	var addr string
	if !testpeer.Eventually(timeout, func() bool {
		addr, err = selected()
		return err == nil && slices.Contains(newAddrs, addr)
	}) {
		t.Errorf("%s: the selected pair's remote is %s (%v), not one of the new candidates %v", who, addr, err, newAddrs)
	}
	t.Logf("%s: ICE restarted (If-Match: %s) in %s, now over %s; ETag %s, was %s",
		who, ifMatch, time.Since(start).Round(time.Millisecond), addr, newTag, oldTag)

	trickle, err := s.TrickleFrag()
	if err != nil {
		t.Fatal(err)
	}
	wantRefused(t, s.Patch(oldTag, trickle), http.StatusPreconditionFailed)
	wantStatus(t, s.Patch(newTag, trickle), http.StatusNoContent)
}

// ICE restarts of the WHIP encoder and of a WHEP player, each as RFC 9725
// has a client do it (PATCH with If-Match: *, new credentials both ways):
// the media goes on reaching the WHEP and WebSocket viewers, over the
// restart's candidates, and the ETag changes.
func TestICERestart(t *testing.T) {
	srv := testpeer.StartServer(t, nil)
	const room = "restarts"
	pub := testpeer.MustWHIPPublisher(t, srv, nil, room, testpeer.WHIPOptions{})
	whep := testpeer.MustWHEPViewer(t, srv, nil, room, testpeer.WHIPOptions{})
	fan := testpeer.MustViewer(t, srv, "fan@example.com", room, testpeer.ViewerOptions{})
	wantMedia(t, "WHEP viewer", whep.Peer, 30)
	wantMedia(t, "WebSocket viewer", fan.Peer, 30)

	restart(t, "WHIP publisher", "*", false, pub.Session, pub.Peer.SelectedRemote, func() error {
		return pub.Peer.WaitConnected(within(t))
	})
	wantMoreMedia(t, "WHEP viewer", whep.Peer, 60)
	wantMoreMedia(t, "WebSocket viewer", fan.Peer, 60)

	restart(t, "WHEP viewer", "*", true, whep.Session, whep.Peer.SelectedRemote, func() error {
		return whep.Peer.WaitConnected(within(t))
	})
	wantMoreMedia(t, "WHEP viewer", whep.Peer, 60)
	wantMoreMedia(t, "WebSocket viewer", fan.Peer, 30)

	// Twice more each, back to back, once with a quoted "*" as some
	// clients send it.
	for _, ifMatch := range []string{`"*"`, "*"} {
		restart(t, "WHIP publisher", ifMatch, false, pub.Session, pub.Peer.SelectedRemote, func() error {
			return pub.Peer.WaitConnected(within(t))
		})
		restart(t, "WHEP viewer", ifMatch, true, whep.Session, whep.Peer.SelectedRemote, func() error {
			return whep.Peer.WaitConnected(within(t))
		})
	}
	wantMoreMedia(t, "WHEP viewer", whep.Peer, 60)
	wantMoreMedia(t, "WebSocket viewer", fan.Peer, 60)
	if c := srv.Counts(); c != (live.Counts{Rooms: 1, Viewers: 2, Sessions: 3, Pipelines: 1, Endpoints: 3}) {
		t.Errorf("counts after the restarts: %+v", c)
	}

	wantStatus(t, whep.Session.Delete(), http.StatusOK)
	wantStatus(t, pub.Session.Delete(), http.StatusOK)
	wantStop(t, fan)
	srv.WaitCounts(t, timeout, live.Counts{})
}
