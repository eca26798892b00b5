package store_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/store"
	"github.com/onair-live/onair/internal/store/redistest"
	"github.com/onair-live/onair/internal/store/storetest"
)

// newRedis returns a store on srv under its own prefix, closed when t ends.
func newRedis(t *testing.T, srv *redistest.Server, prefix string) *store.Redis {
	t.Helper()
	s, err := store.NewRedis(srv.URL, prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// The shared suite, each test under a prefix of its own on one server.
func TestRedis(t *testing.T) {
	srv := redistest.Start(t)
	var n atomic.Int32
	storetest.Run(t, func(t *testing.T) store.Store {
		return newRedis(t, srv, fmt.Sprintf("t%d:", n.Add(1)))
	})
}

func keys(t *testing.T, srv *redistest.Server) []string {
	t.Helper()
	ks, err := srv.Keys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(ks)
	return ks
}

// The keys are the README's, under the prefix, and an ended room leaves none.
func TestRedisKeyLayout(t *testing.T) {
	srv := redistest.Start(t)
	s := newRedis(t, srv, "live:")
	other := newRedis(t, srv, "other:")
	ctx := t.Context()
	storetest.MustCreate(t, s, "r1", "ann@x", time.Now())
	if _, err := s.AddViewer(ctx, "r1", store.User{Email: "bob@x", EndpointID: "ep-b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Heartbeat(ctx, "proc-1", time.Minute); err != nil {
		t.Fatal(err)
	}
	want := []string{"live:owner:proc-1", "live:room:r1", "live:rooms", "live:user:ann@x", "live:user:bob@x", "live:viewers:r1"}
	if got := keys(t, srv); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("keys:\n got %q\nwant %q", got, want)
	}
	c := srv.Client()
	if h, _ := c.HGetAll(ctx, "live:room:r1").Result(); h["presenter"] != "ann@x" || h["pipeline"] != "pl-r1" || h["owner"] != "own-r1" || h["title"] != "t r1" {
		t.Errorf("room hash %v", h)
	}
	if h, _ := c.HGetAll(ctx, "live:user:bob@x").Result(); h["room"] != "r1" || h["role"] != "viewer" || h["endpoint"] != "ep-b" {
		t.Errorf("user hash %v", h)
	}
	if m, _ := c.SMembers(ctx, "live:viewers:r1").Result(); fmt.Sprint(m) != "[bob@x]" {
		t.Errorf("viewer set %v", m)
	}
	if ttl, _ := c.PTTL(ctx, "live:owner:proc-1").Result(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("heartbeat TTL %s", ttl)
	}
	// Another prefix sees nothing of it.
	if rs, err := other.Rooms(ctx); err != nil || len(rs) != 0 {
		t.Errorf("Rooms under another prefix = %+v, %v", rs, err)
	}
	if _, err := s.DeleteRoom(ctx, "r1", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Retire(ctx, "proc-1"); err != nil {
		t.Fatal(err)
	}
	if got := keys(t, srv); len(got) != 0 {
		t.Errorf("keys left after the end: %q", got)
	}
}

// Two stores on one Redis (two onair processes) racing for the same room and
// the same viewers: one wins each race, and the count always equals the
// viewer set.
func TestRedisTwoProcessesRace(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newRedis(t, srv, "race:"), newRedis(t, srv, "race:")
	ctx := t.Context()
	for round := 0; round < 20; round++ {
		id := fmt.Sprintf("room-%d", round)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i, s := range []store.Store{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := s.CreateRoom(ctx, store.Room{ID: id, Presenter: fmt.Sprintf("p%d-%d", round, i), PipelineID: fmt.Sprint(i)},
					store.User{Email: fmt.Sprintf("p%d-%d", round, i)})
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, store.ErrExists):
					t.Errorf("CreateRoom: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("round %d: %d creates won, want 1", round, wins.Load())
		}
		r, _ := a.Room(ctx, id)
		if _, err := a.User(ctx, r.Presenter); err != nil {
			t.Fatalf("the winner's presenter %s has no record: %v", r.Presenter, err)
		}
	}

	storetest.MustCreate(t, a, "big", "host", time.Now())
	var wg sync.WaitGroup
	var joined atomic.Int32
	for g := 0; g < 8; g++ {
		s := []store.Store{a, b}[g%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				email := fmt.Sprintf("v%d", i%10) // every goroutine wants the same ten viewers
				if _, err := s.AddViewer(ctx, "big", store.User{Email: email}); err == nil {
					joined.Add(1)
					if err := s.RemoveViewer(ctx, "big", email); err != nil {
						t.Errorf("RemoveViewer(%s): %v", email, err)
					}
				} else if !errors.Is(err, store.ErrExists) {
					t.Errorf("AddViewer(%s): %v", email, err)
				}
				r, err := s.Room(ctx, "big")
				if err != nil {
					t.Error(err)
					return
				}
				if r.Viewers < 0 || r.Viewers > 10 {
					t.Errorf("count %d with ten possible viewers", r.Viewers)
				}
			}
		}()
	}
	wg.Wait()
	if joined.Load() == 0 {
		t.Error("no join succeeded")
	}
	r, _ := b.Room(ctx, "big")
	n, _ := srv.Client().SCard(ctx, "race:viewers:big").Result()
	if r.Viewers != 0 || n != 0 {
		t.Errorf("after the race: count %d, viewer set %d, want 0", r.Viewers, n)
	}
}

// A room record deleted by hand: the room is gone for readers, and ending it
// cleans up what was left of it, so that its presenter and viewers are free.
func TestRedisRecordDeletedByHand(t *testing.T) {
	srv := redistest.Start(t)
	s := newRedis(t, srv, "p:")
	ctx := t.Context()
	storetest.MustCreate(t, s, "r1", "ann", time.Now())
	storetest.MustCreate(t, s, "r2", "bob", time.Now())
	if _, err := s.AddViewer(ctx, "r1", store.User{Email: "v1"}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Client().Del(ctx, "p:room:r1").Err(); err != nil {
		t.Fatal(err)
	}
	if rs, err := s.Rooms(ctx); err != nil || len(rs) != 1 || rs[0].ID != "r2" {
		t.Errorf("Rooms = %+v, %v, want r2 only", rs, err)
	}
	if _, err := s.Room(ctx, "r1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Room(r1): %v", err)
	}
	if _, err := s.AddViewer(ctx, "r1", store.User{Email: "v2"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AddViewer(r1): %v", err)
	}
	if _, err := s.DeleteRoom(ctx, "r1", "pl-r1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteRoom(r1): %v, want ErrNotFound", err)
	}
	for _, email := range []string{"ann", "v1"} {
		if _, err := s.User(ctx, email); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("User(%s) after the cleanup: %v", email, err)
		}
	}
	if got := keys(t, srv); fmt.Sprint(got) != "[p:room:r2 p:rooms p:user:bob]" {
		t.Errorf("keys after the cleanup: %q", got)
	}
	storetest.MustCreate(t, s, "r1", "ann", time.Now())
}

// While Redis is away every call fails fast with an error naming it; the
// same store works again once it is back.
func TestRedisAwayAndBack(t *testing.T) {
	srv := redistest.Start(t)
	s := newRedis(t, srv, "away:")
	ctx := t.Context()
	storetest.MustCreate(t, s, "r1", "ann", time.Now())
	srv.Stop()

	start := time.Now()
	for _, call := range []func() error{
		func() error { return s.Ping(ctx) },
		func() error { _, err := s.Rooms(ctx); return err },
		func() error { _, err := s.AddViewer(ctx, "r1", store.User{Email: "v"}); return err },
		func() error { _, err := s.Heartbeat(ctx, "me", time.Second); return err },
	} {
		err := call()
		if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrExists) {
			t.Fatalf("a call while Redis is away: %v, want a connection error", err)
		}
		if !strings.Contains(err.Error(), "redis "+srv.Addr) {
			t.Errorf("error %q does not name the server", err)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("four calls took %s while Redis was away", d)
	}

	srv.Restart()
	deadline := time.Now().Add(15 * time.Second)
	for s.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Ping still fails 15s after Redis came back: %v", s.Ping(ctx))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// It came back empty (no persistence): the heartbeat says so.
	if renewed, err := s.Heartbeat(ctx, "me", time.Minute); err != nil || renewed {
		t.Errorf("Heartbeat on an empty Redis = %v, %v, want not renewed", renewed, err)
	}
	storetest.MustCreate(t, s, "r1", "ann", time.Now())
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if r, err := s.Room(cctx, "r1"); err != nil || r.Presenter != "ann" {
		t.Errorf("Room after the restart = %+v, %v", r, err)
	}
}
