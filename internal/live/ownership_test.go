package live_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/sfu"
	"github.com/onair-live/onair/internal/store"
)

var octx = context.Background()

// newOwnedService is a service named owner over st, with the real engine.
func newOwnedService(t *testing.T, st store.Store, owner string, rec *recorder) *live.Service {
	t.Helper()
	engine, err := sfu.New(sfu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	svc := live.New(st, engine, live.Options{OnEvent: rec.add, Owner: owner, OwnerTTL: time.Minute})
	t.Cleanup(func() {
		svc.Shutdown(octx)
		_ = engine.Close()
	})
	return svc
}

// recordRoom writes a room of owner into st, as another process would.
func recordRoom(t *testing.T, st store.Store, id, owner string, viewers ...string) {
	t.Helper()
	err := st.CreateRoom(octx, store.Room{ID: id, Title: "T " + id, ProfileURL: "u", Presenter: "p-" + id,
		PipelineID: "pl-" + id, CreatedAt: time.Now(), Owner: owner}, store.User{Email: "p-" + id})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range viewers {
		if _, err := st.AddViewer(octx, id, store.User{Email: v}); err != nil {
			t.Fatal(err)
		}
	}
}

// A room whose owner's heartbeat has expired is ended as if its presenter
// had dropped: records gone, viewers and room.finished (reclaimed) emitted.
// A room whose owner is alive is left alone.
func TestSyncEndsRoomsOfVanishedOwners(t *testing.T) {
	st := store.NewMemory()
	if _, err := st.Heartbeat(octx, "alive", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Heartbeat(octx, "dead", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	recordRoom(t, st, "r-dead", "dead", "v1", "v2")
	recordRoom(t, st, "r-never", "never-beat")
	recordRoom(t, st, "r-alive", "alive", "v3")
	for alive := true; alive; { // "dead"'s 1ms heartbeat runs out
		alive, _ = st.OwnerAlive(octx, "dead")
	}

	rec := &recorder{}
	svc := newOwnedService(t, st, "me", rec)
	n, err := svc.Sync(octx)
	if err != nil || n != 2 {
		t.Fatalf("Sync = %d, %v, want 2 rooms ended", n, err)
	}
	got := rec.summary()
	sort.Strings(got)
	want := []string{"room.finished r-dead reclaimed", "room.finished r-never reclaimed",
		"viewer.left r-dead v1 ended", "viewer.left r-dead v2 ended"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
	rec.mu.Lock()
	for _, e := range rec.events {
		if e.Type == live.EventRoomFinished && e.RoomID == "r-dead" && (e.Presenter != "p-r-dead" || e.Title != "T r-dead") {
			t.Errorf("room.finished of r-dead: %+v, want its presenter and title", e)
		}
	}
	rec.mu.Unlock()
	rs, _ := st.Rooms(octx)
	if len(rs) != 1 || rs[0].ID != "r-alive" || rs[0].Viewers != 1 {
		t.Errorf("rooms after Sync: %+v, want r-alive alone with its viewer", rs)
	}
	for _, email := range []string{"p-r-dead", "v1", "v2", "p-r-never"} {
		if _, err := st.User(octx, email); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("User(%s) after Sync: %v", email, err)
		}
	}
	if alive, _ := st.OwnerAlive(octx, "me"); !alive {
		t.Error("Sync did not record this process's heartbeat")
	}
	// Nothing is left to do, and nothing is emitted twice.
	if n, err := svc.Sync(octx); err != nil || n != 0 {
		t.Errorf("second Sync = %d, %v", n, err)
	}
	if len(rec.summary()) != len(want) {
		t.Errorf("events after the second Sync: %q", rec.summary())
	}
}

// Two processes reconciling the same dead room: it ends once.
func TestSyncEndsEachRoomOnce(t *testing.T) {
	st := store.NewMemory()
	for i := 0; i < 20; i++ {
		recordRoom(t, st, fmt.Sprintf("r%d", i), "gone", fmt.Sprintf("v%d", i))
	}
	rec := &recorder{}
	a := newOwnedService(t, st, "a", rec)
	b := newOwnedService(t, st, "b", rec)
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for _, svc := range []*live.Service{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := svc.Sync(octx)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			total += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	finished := 0
	for _, s := range rec.summary() {
		if len(s) > 13 && s[:13] == "room.finished" {
			finished++
		}
	}
	if total != 20 || finished != 20 {
		t.Errorf("%d rooms ended, %d room.finished events, want 20 and 20", total, finished)
	}
}

// This process's records are repaired: a record of a room it does not hold
// and a viewer record its room does not have are removed, silently (their
// events were emitted when they ended); a record lost with the store (the
// heartbeat gone too) is restored.
func TestSyncRepairsOwnRecords(t *testing.T) {
	st := store.NewMemory()
	rec := &recorder{}
	svc := newOwnedService(t, st, "me", rec)
	if _, err := svc.StartBroadcast(octx, auth.Trusted("ann"), live.StartRequest{RoomID: "a", Title: "T", ProfileURL: "u"}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"v1", "v2"} {
		if _, err := svc.Join(octx, auth.Trusted(v), "a"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.Sync(octx); err != nil {
		t.Fatal(err)
	}
	before := len(rec.summary())

	// Left behind by a teardown or a leave while the store was away.
	recordRoom(t, st, "stale", "me", "sv")
	if _, err := st.AddViewer(octx, "a", store.User{Email: "ghost"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Sync(octx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Room(octx, "stale"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("stale room after Sync: %v", err)
	}
	if _, err := st.User(octx, "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ghost viewer after Sync: %v", err)
	}
	if r, _ := st.Room(octx, "a"); r.Viewers != 2 {
		t.Errorf("room a has %d viewers after Sync, want 2", r.Viewers)
	}
	if got := rec.summary(); len(got) != before {
		t.Errorf("repairs emitted events: %q", got[before:])
	}

	// The store loses everything (a Redis that restarted empty).
	if _, err := st.DeleteRoom(octx, "a", ""); err != nil {
		t.Fatal(err)
	}
	if err := st.Retire(octx, "me"); err != nil {
		t.Fatal(err)
	}
	// The reaper looks first: it must not take the live room for an orphan.
	pls, eps, err := svc.Orphans(octx)
	if err != nil || len(pls) != 0 || len(eps) != 0 {
		t.Errorf("Orphans after the store lost its records = %d pipelines, %d endpoints, %v; want none", len(pls), len(eps), err)
	}
	r, err := st.Room(octx, "a")
	if err != nil || r.Viewers != 2 || r.Presenter != "ann" || r.Owner != "me" {
		t.Errorf("room a after the restore = %+v, %v", r, err)
	}
	if u, err := st.User(octx, "v1"); err != nil || u.RoomID != "a" || u.EndpointID == "" {
		t.Errorf("v1 after the restore = %+v, %v", u, err)
	}
	// And the room works as before.
	if info, err := svc.Join(octx, auth.Trusted("v3"), "a"); err != nil || info.Count != 3 {
		t.Errorf("Join after the restore = %+v, %v", info, err)
	}
	if err := svc.EndBroadcast(octx, auth.Trusted("ann")); err != nil {
		t.Fatal(err)
	}
	if rs, _ := st.Rooms(octx); len(rs) != 0 {
		t.Errorf("rooms after the end: %+v", rs)
	}
	if c := svc.Counts(); c != (live.Counts{}) {
		t.Errorf("counts after the end: %+v", c)
	}
}

// A room held by another live process is not this one's to join, and the
// error says where it is; its presenter ending it here removes the record,
// which its owner then reclaims.
func TestRoomOfAnotherProcess(t *testing.T) {
	st := store.NewMemory()
	if _, err := st.Heartbeat(octx, "other", time.Minute); err != nil {
		t.Fatal(err)
	}
	recordRoom(t, st, "theirs", "other")
	svc := newOwnedService(t, st, "me", &recorder{})
	_, err := svc.Join(octx, auth.Trusted("v"), "theirs")
	if !errors.Is(err, live.ErrNoRoom) || !strings.Contains(err.Error(), "another onair process (other)") {
		t.Errorf("Join of another process's room: %v", err)
	}
	if _, err := st.User(octx, "v"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused join left a record: %v", err)
	}
	if err := svc.EndBroadcast(octx, auth.Trusted("p-theirs")); err != nil {
		t.Errorf("EndBroadcast of another process's room: %v", err)
	}
	if _, err := st.Room(octx, "theirs"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("room after EndBroadcast: %v", err)
	}
}
