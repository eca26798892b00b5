package live_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/httpapi"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/sfu"
	"github.com/onair-live/onair/internal/store"
	"github.com/onair-live/onair/internal/testpeer"
)

var reapCtx = context.Background()

// newService builds the domain over a memory store and the real media
// engine, which the test also holds, so that it can make objects behind the
// domain's back (what a crash between two steps, or a second process
// sharing the store, would leave).
func newReapService(t *testing.T, reap time.Duration) (*live.Service, *sfu.Engine, *store.Memory) {
	t.Helper()
	testpeer.CheckGoroutines(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	engine, err := sfu.New(sfu.Config{Loopback: true,
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory()
	svc := live.New(st, engine, live.Options{Logger: log, ReapInterval: reap})
	ctx, cancel := context.WithCancel(reapCtx)
	reaped := make(chan struct{})
	go func() { defer close(reaped); svc.RunReaper(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-reaped
		svc.Shutdown(reapCtx)
		if err := engine.Close(); err != nil {
			t.Error(err)
		}
		if c := svc.Counts(); c != (live.Counts{}) {
			t.Errorf("after shutdown: %+v", c)
		}
	})
	return svc, engine, st
}

func startReapRoom(t *testing.T, svc *live.Service, presenter, roomID string, viewers ...string) {
	t.Helper()
	if _, err := svc.StartBroadcast(reapCtx, auth.Trusted(presenter), live.StartRequest{RoomID: roomID, Title: "t", ProfileURL: "p"}); err != nil {
		t.Fatal(err)
	}
	for _, v := range viewers {
		if _, err := svc.Join(reapCtx, auth.Trusted(v), roomID); err != nil {
			t.Fatal(err)
		}
	}
}

// A pipeline that no room owns is listed by GET /media/pipelines/exception
// and released by DELETE; rooms' pipelines are neither.
func TestOrphanPipelineAPI(t *testing.T) {
	svc, engine, _ := newReapService(t, 0)
	hs := httptest.NewServer(httpapi.New(svc, httpapi.Config{BasePath: "/signal",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	defer hs.Close()
	c := testpeer.NewClient(hs.URL + "/signal")
	defer c.CloseIdle()

	startReapRoom(t, svc, "ann", "room-a", "v1")
	orphan, err := engine.NewPipeline("orphan")
	if err != nil {
		t.Fatal(err)
	}
	ps, err := c.Orphans()
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0] != (testpeer.Pipeline{PipelineName: "orphan", PipelineID: orphan.ID()}) {
		t.Errorf("/media/pipelines/exception is %+v, want only the orphan %s", ps, orphan.ID())
	}
	if all, err := c.Pipelines(); err != nil || len(all) != 2 {
		t.Errorf("/media/pipelines is %+v, %v; want the room's and the orphan", all, err)
	}

	if r := c.ReclaimOrphans(); r.Status != http.StatusNoContent {
		t.Fatalf("%s, want 204", r)
	}
	if ps, err := c.Orphans(); err != nil || len(ps) != 0 {
		t.Errorf("after DELETE, /media/pipelines/exception is %+v, %v; want []", ps, err)
	}
	if all, err := c.Pipelines(); err != nil || len(all) != 1 || all[0].PipelineName != "room-a" {
		t.Errorf("after DELETE, /media/pipelines is %+v, %v; want room-a's alone", all, err)
	}
	if got, want := svc.Counts(), (live.Counts{Rooms: 1, Viewers: 1, Pipelines: 1, Endpoints: 2}); got != want {
		t.Errorf("counts %+v, want %+v: the room was touched", got, want)
	}
}

// The reaper releases, on its own, a pipeline that no room owns.
func TestReaperReleasesOrphanPipeline(t *testing.T) {
	svc, engine, _ := newReapService(t, 20*time.Millisecond)
	startReapRoom(t, svc, "ann", "room-a")
	if _, err := engine.NewPipeline("orphan"); err != nil {
		t.Fatal(err)
	}
	want := live.Counts{Rooms: 1, Pipelines: 1, Endpoints: 1}
	var got live.Counts
	if !testpeer.Eventually(10*time.Second, func() bool { got = svc.Counts(); return got == want }) {
		t.Errorf("counts %+v, want %+v: the orphan pipeline was not reclaimed", got, want)
	}
}

// A room whose record vanished from the store (another process ended it, or
// the store lost it) is ended by the reaper, media and all.
func TestReaperEndsRoomWhoseRecordVanished(t *testing.T) {
	svc, _, st := newReapService(t, 20*time.Millisecond)
	startReapRoom(t, svc, "ann", "room-a", "v1", "v2")
	startReapRoom(t, svc, "bob", "room-b", "v3")
	if _, err := st.DeleteRoom(reapCtx, "room-a", ""); err != nil {
		t.Fatal(err)
	}
	want := live.Counts{Rooms: 1, Viewers: 1, Pipelines: 1, Endpoints: 2}
	var got live.Counts
	if !testpeer.Eventually(10*time.Second, func() bool { got = svc.Counts(); return got == want }) {
		t.Errorf("counts %+v, want %+v (room-b alone)", got, want)
	}
	// ann and her room id are free again.
	startReapRoom(t, svc, "ann", "room-a")
}

// A viewer whose record vanished is an orphan endpoint: listed, and removed
// from its room by a reclaim, leaving the others.
func TestReclaimViewerWhoseRecordVanished(t *testing.T) {
	svc, _, st := newReapService(t, 0)
	startReapRoom(t, svc, "ann", "room-a", "v1", "v2")
	if err := st.RemoveViewer(reapCtx, "room-a", "v1"); err != nil {
		t.Fatal(err)
	}
	pls, eps, err := svc.Orphans(reapCtx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pls) != 0 || len(eps) != 1 || eps[0].Name() != "viewer:v1" {
		var names []string
		for _, ep := range eps {
			names = append(names, ep.Name())
		}
		t.Fatalf("orphans: %d pipelines, endpoints %v; want only viewer:v1", len(pls), names)
	}
	n, err := svc.ReclaimOrphans(reapCtx)
	if err != nil || n != 1 {
		t.Errorf("ReclaimOrphans = %d, %v; want 1", n, err)
	}
	if got, want := svc.Counts(), (live.Counts{Rooms: 1, Viewers: 1, Pipelines: 1, Endpoints: 2}); got != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}
	// v1 may join again.
	if _, err := svc.Join(reapCtx, auth.Trusted("v1"), "room-a"); err != nil {
		t.Errorf("v1 rejoining: %v", err)
	}
}
