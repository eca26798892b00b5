package app_test

import (
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/testpeer"
)

// A presenter streams to three viewers: each sees every frame it gets
// exactly as sent, starting with a keyframe, and hears audio; the room list
// and the media admin API show the broadcast as it is; ending it tells every
// viewer and releases everything.
func TestBroadcastToThreeViewers(t *testing.T) {
	srv := testpeer.StartServer(t, nil)
	const room = "alice@example.com"
	// Start near the top of the sequence space, with one keyframe only (the
	// first frame): each viewer, however late it joins, is started from that
	// keyframe's group of pictures, so each sees the sequence numbers wrap.
	p := testpeer.MustPresenter(t, srv, "alice@example.com", room, testpeer.PresenterOptions{
		Publisher: testpeer.PublisherOptions{VideoSeqStart: 65535 - 100, KeyframeEvery: -1},
	})
	var viewers []*testpeer.Viewer
	for i := 1; i <= 3; i++ {
		viewers = append(viewers, testpeer.MustViewer(t, srv, fmt.Sprintf("viewer%d@example.com", i), room, testpeer.ViewerOptions{}))
	}
	for _, v := range viewers {
		wantMedia(t, v, 90)
	}
	for _, v := range viewers {
		s := v.Peer.Stats()
		t.Logf("%s: %s", v.Email, s)
		if s.Keyframes == 0 || s.FirstKeyframe == 0 {
			t.Errorf("%s: no keyframe", v.Email)
		}
		if !s.SeqWrapped {
			t.Errorf("%s: video sequence numbers did not wrap (the publisher started at 65435)", v.Email)
		}
	}
	t.Logf("presenter: %+v", p.Peer.Stats())

	// What users and operators see.
	rs := rooms(t, srv)
	if len(rs) != 1 || rs[0] != (testpeer.Room{RoomID: room, Title: "title of " + room,
		ProfileURL: "https://example.com/alice@example.com.png", Count: "3"}) {
		t.Errorf("/room/list is %+v, want alice's room with count 3", rs)
	}
	ps := pipelines(t, srv)
	if len(ps) != 1 || ps[0].PipelineName != room || ps[0].PipelineID == "" {
		t.Errorf("/media/pipelines is %+v, want one pipeline named %s", ps, room)
	}
	eps, err := srv.REST.Endpoints("alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	ids := map[string]bool{}
	for _, ep := range eps {
		names = append(names, ep.EndpointName)
		ids[ep.EndpointID] = true
		if ep.Stats.State != "connected" {
			t.Errorf("endpoint %s is %q, want connected", ep.EndpointName, ep.Stats.State)
		}
		if ep.EndpointName == "presenter:alice@example.com" && ep.Stats.PacketsIn == 0 {
			t.Errorf("presenter endpoint received no packets: %+v", ep)
		}
		if ep.EndpointName != "presenter:alice@example.com" && ep.Stats.PacketsOut == 0 {
			t.Errorf("viewer endpoint %s sent no packets: %+v", ep.EndpointName, ep)
		}
	}
	sort.Strings(names)
	want := []string{"presenter:alice@example.com", "viewer:viewer1@example.com", "viewer:viewer2@example.com", "viewer:viewer3@example.com"}
	if fmt.Sprint(names) != fmt.Sprint(want) || len(ids) != 4 {
		t.Errorf("/media/endpoints/alice@example.com names %v (%d distinct ids), want %v", names, len(ids), want)
	}
	if c := srv.Counts(); c != (live.Counts{Rooms: 1, Viewers: 3, Sessions: 4, Pipelines: 1, Endpoints: 4}) {
		t.Errorf("counts %+v", c)
	}

	// The presenter ends the broadcast.
	wantStatus(t, srv.REST.EndRoom("alice@example.com"), http.StatusNoContent)
	for _, v := range viewers {
		wantStop(t, v.WS, v.Email, "Presenter stopped streaming.")
		if err := v.Peer.Check(); err != nil {
			t.Error(err)
		}
	}
	if rs := rooms(t, srv); len(rs) != 0 {
		t.Errorf("/room/list after the end is %+v, want []", rs)
	}
	if ps := pipelines(t, srv); len(ps) != 0 {
		t.Errorf("/media/pipelines after the end is %+v, want []", ps)
	}
	srv.WaitCounts(t, timeout, live.Counts{})
}

// A viewer's keyframe request (PLI) reaches the presenter and brings a
// keyframe; a burst of requests is throttled to about one per 500 ms, so a
// viewer cannot make the presenter send nothing but keyframes.
func TestViewerKeyframeRequest(t *testing.T) {
	srv := testpeer.StartServer(t, nil)
	const ann = "ann@example.com"
	// Keyframes only when asked for (and the first frame).
	p := testpeer.MustPresenter(t, srv, ann, ann, testpeer.PresenterOptions{
		Publisher: testpeer.PublisherOptions{KeyframeEvery: -1},
	})
	v := testpeer.MustViewer(t, srv, "v1@example.com", ann, testpeer.ViewerOptions{})
	wantMedia(t, v, 15)

	plis, keys := p.Peer.Stats().PLIs, v.Peer.Stats().Keyframes
	if err := v.Peer.RequestKeyframe(); err != nil {
		t.Fatal(err)
	}
	if err := v.Peer.WaitFor(within(t), "a keyframe after a PLI", func(s testpeer.ViewerStats) bool {
		return s.Keyframes > keys
	}); err != nil {
		t.Fatal(err)
	}
	if got := p.Peer.Stats().PLIs; got <= plis {
		t.Errorf("the presenter got no PLI (%d before, %d after)", plis, got)
	}

	// A burst of 50 requests, one every 10 ms.
	plis = p.Peer.Stats().PLIs
	start := time.Now()
	for i := 0; i < 50; i++ {
		if err := v.Peer.RequestKeyframe(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Let the last throttled request go out, then count: at most one PLI
	// per 500 ms of the time elapsed, plus the first and a pending one.
	wantMoreMedia(t, v, 30)
	elapsed := time.Since(start)
	got := p.Peer.Stats().PLIs - plis
	limit := uint64(elapsed/(500*time.Millisecond)) + 2
	t.Logf("%d PLIs reached the presenter for 50 requests in %s", got, elapsed.Round(time.Millisecond))
	if got == 0 || got > limit {
		t.Errorf("%d PLIs reached the presenter for 50 requests in %s, want 1 to %d", got, elapsed, limit)
	}
}
