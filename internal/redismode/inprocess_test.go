package redismode

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/store/redistest"
	"github.com/onair-live/onair/internal/testpeer"
)

// startServer starts onair in this process with its state in srv under
// prefix, and checks, after it has shut down, that it left no key behind.
func startServer(t *testing.T, srv *redistest.Server, prefix string, configure func(*config.Config)) *testpeer.Server {
	t.Helper()
	t.Cleanup(func() { // runs after the server's own cleanup, which stops it
		if ks := keys(t, srv); len(ks) != 0 {
			t.Errorf("keys left after shutdown: %q", ks)
		}
	})
	return testpeer.StartServer(t, func(c *config.Config) {
		c.RedisURL, c.RedisPrefix = srv.URL, prefix
		c.RedisOwnerTTL = time.Second
		c.ReapInterval = 200 * time.Millisecond
		if configure != nil {
			configure(c)
		}
	})
}

// health is GET /healthcheck/_check: its status, and its body's status and reason.
func health(s *testpeer.Server) (int, string, string) {
	r := s.REST.Do(http.MethodGet, "/healthcheck/_check", "", nil)
	var b struct{ Status, Reason string }
	_ = json.Unmarshal(r.Body, &b)
	return r.Status, b.Status, b.Reason
}

// wantUnavailable fails the test unless r is the protocol's 503.
func wantUnavailable(t *testing.T, r testpeer.Response) {
	t.Helper()
	if e := r.APIError(); r.Status != http.StatusServiceUnavailable || e.Name != "UNAVAILABLE" || e.Code != 5030 ||
		!strings.Contains(e.Message, "store cannot be reached") {
		t.Errorf("%s, want 503 UNAVAILABLE 5030 saying the store cannot be reached", r)
	}
}

// Redis stops under a live broadcast and comes back empty (no persistence):
// the media never stops; meanwhile new requests get a clear 503 and the
// health check says DOWN and why; once Redis is back onair reconnects on its
// own, puts its room back, and new viewers join and watch.
func TestRedisRestartUnderBroadcast(t *testing.T) {
	srv := redistest.Start(t)
	hooks := newHookSink(t)
	s := startServer(t, srv, "rr:", func(c *config.Config) {
		c.WebhookURL, c.WebhookSecret = hooks.URL, "test-secret"
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout)
	defer cancel()
	p := testpeer.MustPresenter(t, s, "ann@x", "ann@x", testpeer.PresenterOptions{})
	v1 := testpeer.MustViewer(t, s, "v1@x", "ann@x", testpeer.ViewerOptions{})
	v2 := testpeer.MustViewer(t, s, "v2@x", "ann@x", testpeer.ViewerOptions{})
	if err := v1.Peer.WaitMedia(ctx, 10); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	code, status, reason := health(s)
	if code != http.StatusServiceUnavailable || status != "DOWN" || !strings.Contains(reason, "redis "+srv.Addr) {
		t.Errorf("health while Redis is down: %d %s %q, want 503 DOWN naming Redis", code, status, reason)
	}
	wantUnavailable(t, s.REST.Join("v3@x", "ann@x"))
	wantUnavailable(t, s.REST.CreateRoom("bob@x", "bob@x", "B", "https://x/b.png"))
	wantUnavailable(t, s.REST.Do(http.MethodGet, "/room/list", "", nil))
	// A viewer leaves while Redis is away: its media goes at once, and its
	// record (had Redis kept any) would be fixed when Redis is back.
	v2.Close()
	// The broadcast flows on for longer than the owner TTL, through failed
	// heartbeats and reaper runs.
	if err := v1.Peer.WaitMoreMedia(ctx, 60); err != nil {
		t.Fatal(err)
	}
	if c := s.Counts(); c.Rooms != 1 || c.Pipelines != 1 {
		t.Fatalf("counts while Redis is down: %+v", c)
	}

	srv.Restart()
	waitFor(t, "health UP", func() bool { code, status, _ := health(s); return code == http.StatusOK && status == "UP" })
	waitFor(t, "the room back in the list with its viewer", func() bool {
		return fmt.Sprint(roomList(s.REST)) == "[ann@x:1]"
	})
	v3 := testpeer.MustViewer(t, s, "v3@x", "ann@x", testpeer.ViewerOptions{})
	if err := v3.Peer.WaitMedia(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if err := v1.Peer.WaitMoreMedia(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(roomList(s.REST)); got != "[ann@x:2]" {
		t.Errorf("rooms after the join: %s", got)
	}
	if hooks.has("room.finished", "ann@x", "", "reclaimed") {
		t.Errorf("the live room was reclaimed: %s", hooks)
	}
	// Leaving and ending work on the restored records.
	want(t, s.REST.Leave("v1@x"), http.StatusNoContent)
	want(t, s.REST.EndRoom("ann@x"), http.StatusNoContent)
	if _, err := v3.WS.NextWithin(timeout, testpeer.IDStop); err != nil {
		t.Errorf("v3 after the end: %v", err)
	}
	p.Close()
	v1.Close()
	v3.Close()
	s.WaitCounts(t, timeout, live.Counts{})
	if ks := keys(t, srv); len(ks) != 1 || !strings.HasPrefix(ks[0], "rr:owner:") {
		t.Errorf("keys after the end: %q, want the heartbeat alone", ks)
	}
}

// A room record deleted in Redis behind onair's back makes its pipeline an
// orphan: the admin API shows it and reclaims it (viewers are told), and so
// does the reaper on its own; the presenter is free to go live again.
func TestRecordDeletedInRedisIsReclaimed(t *testing.T) {
	t.Run("admin API", func(t *testing.T) {
		srv := redistest.Start(t)
		s := startServer(t, srv, "orph:", func(c *config.Config) { c.ReapInterval = 0 })
		p := testpeer.MustPresenter(t, s, "ann@x", "room-a", testpeer.PresenterOptions{})
		v := testpeer.MustViewer(t, s, "v@x", "room-a", testpeer.ViewerOptions{})
		want(t, s.REST.CreateRoom("bob@x", "room-b", "B", "https://x/b.png"), http.StatusCreated)
		pls, err := s.REST.Pipelines()
		if err != nil || len(pls) != 2 {
			t.Fatalf("pipelines %+v, %v", pls, err)
		}
		if orphans, err := s.REST.Orphans(); err != nil || len(orphans) != 0 {
			t.Fatalf("orphans before the delete: %+v, %v", orphans, err)
		}

		if err := srv.Client().Del(context.Background(), "orph:room:room-a").Err(); err != nil {
			t.Fatal(err)
		}
		orphans, err := s.REST.Orphans()
		if err != nil || len(orphans) != 1 || orphans[0].PipelineName != "room-a" {
			t.Fatalf("orphans after the delete: %+v, %v, want room-a's pipeline", orphans, err)
		}
		if got := fmt.Sprint(roomList(s.REST)); got != "[room-b:0]" {
			t.Errorf("rooms: %s", got)
		}
		want(t, s.REST.ReclaimOrphans(), http.StatusNoContent)
		if _, err := v.WS.NextWithin(timeout, testpeer.IDStop); err != nil {
			t.Errorf("the viewer after the reclaim: %v", err)
		}
		if orphans, err := s.REST.Orphans(); err != nil || len(orphans) != 0 {
			t.Errorf("orphans after the reclaim: %+v, %v", orphans, err)
		}
		if pls, err := s.REST.Pipelines(); err != nil || len(pls) != 1 || pls[0].PipelineName != "room-b" {
			t.Errorf("pipelines after the reclaim: %+v, %v", pls, err)
		}
		for _, k := range keys(t, srv) {
			if strings.Contains(k, "room-a") || strings.Contains(k, "ann@x") || strings.Contains(k, "v@x") {
				t.Errorf("a key of the reclaimed room is left: %s", k)
			}
		}
		p.Close()
		v.Close()
		want(t, s.REST.CreateRoom("ann@x", "room-a", "A", "https://x/a.png"), http.StatusCreated)
		want(t, s.REST.EndRoom("ann@x"), http.StatusNoContent)
		want(t, s.REST.EndRoom("bob@x"), http.StatusNoContent)
		s.WaitCounts(t, timeout, live.Counts{})
	})
	t.Run("reaper", func(t *testing.T) {
		srv := redistest.Start(t)
		s := startServer(t, srv, "reap:", nil)
		p := testpeer.MustPresenter(t, s, "ann@x", "room-a", testpeer.PresenterOptions{})
		v := testpeer.MustViewer(t, s, "v@x", "room-a", testpeer.ViewerOptions{})
		if err := srv.Client().Del(context.Background(), "reap:room:room-a").Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := v.WS.NextWithin(timeout, testpeer.IDStop); err != nil {
			t.Errorf("the viewer after the reaper ran: %v", err)
		}
		s.WaitCounts(t, timeout, live.Counts{})
		p.Close()
		v.Close()
		waitFor(t, "Redis holding the heartbeat alone", func() bool {
			ks := keys(t, srv)
			return len(ks) == 1 && strings.HasPrefix(ks[0], "reap:owner:")
		})
	})
}

// onair starts while Redis is down: it serves, says DOWN and 503 until Redis
// answers, then works without a restart.
func TestRedisDownAtStart(t *testing.T) {
	srv := redistest.Start(t)
	srv.Stop()
	s := startServer(t, srv, "late:", nil)
	if code, status, reason := health(s); code != http.StatusServiceUnavailable || status != "DOWN" || reason == "" {
		t.Errorf("health: %d %s %q, want 503 DOWN with a reason", code, status, reason)
	}
	wantUnavailable(t, s.REST.CreateRoom("ann@x", "room-a", "A", "https://x/a.png"))
	srv.Restart()
	waitFor(t, "health UP", func() bool { code, _, _ := health(s); return code == http.StatusOK })
	want(t, s.REST.CreateRoom("ann@x", "room-a", "A", "https://x/a.png"), http.StatusCreated)
	want(t, s.REST.Join("v@x", "room-a"), http.StatusCreated)
	if got := fmt.Sprint(roomList(s.REST)); got != "[room-a:1]" {
		t.Errorf("rooms: %s", got)
	}
	want(t, s.REST.EndRoom("ann@x"), http.StatusNoContent)
}
