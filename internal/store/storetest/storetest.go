// Package storetest is the one set of tests every store.Store passes: the
// memory store and the Redis store run it alike (Run), so that onair behaves
// the same whichever holds its state. It is used only by tests.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/store"
)

// NewStore returns an empty store for one test, closed when the test ends.
type NewStore func(t *testing.T) store.Store

// Run runs the suite, each test on a new store.
func Run(t *testing.T, newStore NewStore) {
	for _, tt := range []struct {
		name string
		f    func(*testing.T, store.Store)
	}{
		{"Rooms", testRooms},
		{"CreateRoomConflicts", testCreateRoomConflicts},
		{"Viewers", testViewers},
		{"DeleteRoom", testDeleteRoom},
		{"DeleteRoomOfPipeline", testDeleteRoomOfPipeline},
		{"BindSession", testBindSession},
		{"MoveViewer", testMoveViewer},
		{"RestoreRoom", testRestoreRoom},
		{"Heartbeat", testHeartbeat},
		{"ConcurrentViewers", testConcurrentViewers},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.f(t, newStore(t)) })
	}
}

// MustCreate records room id presented by presenter at time at.
func MustCreate(t *testing.T, s store.Store, id, presenter string, at time.Time) {
	t.Helper()
	err := s.CreateRoom(context.Background(),
		store.Room{ID: id, Title: "t " + id, ProfileURL: "https://x/" + presenter, Presenter: presenter,
			PipelineID: "pl-" + id, CreatedAt: at, Owner: "own-" + id},
		store.User{Email: presenter, RoomID: id, Role: store.RolePresenter, EndpointID: "ep-" + presenter})
	if err != nil {
		t.Fatalf("CreateRoom(%s): %v", id, err)
	}
}

func testRooms(t *testing.T, s store.Store) {
	ctx := t.Context()
	if rs, err := s.Rooms(ctx); err != nil || len(rs) != 0 {
		t.Errorf("Rooms of an empty store = %+v, %v", rs, err)
	}
	t0 := time.Unix(1000, 123456789)
	MustCreate(t, s, "b", "bob", t0)
	MustCreate(t, s, "a", "ann", t0)                   // same time: ordered by id
	MustCreate(t, s, "c", "cid", t0.Add(-time.Minute)) // oldest first

	rs, err := s.Rooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	if fmt.Sprint(ids) != "[c a b]" {
		t.Errorf("Rooms order %v, want [c a b]", ids)
	}
	r, err := s.Room(ctx, "a")
	if err != nil || r.ID != "a" || r.Title != "t a" || r.ProfileURL != "https://x/ann" || r.Presenter != "ann" ||
		r.PipelineID != "pl-a" || r.Owner != "own-a" || !r.CreatedAt.Equal(t0) || r.Viewers != 0 {
		t.Errorf("Room(a) = %+v, %v", r, err)
	}
	if _, err := s.Room(ctx, "zz"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Room(zz): %v, want ErrNotFound", err)
	}
	u, err := s.User(ctx, "ann")
	if err != nil || u.Email != "ann" || u.Role != store.RolePresenter || u.RoomID != "a" || u.EndpointID != "ep-ann" {
		t.Errorf("User(ann) = %+v, %v", u, err)
	}
	if _, err := s.User(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("User(nobody): %v, want ErrNotFound", err)
	}
	// Ids and emails are any string.
	odd := "room:with spaces/and:colons"
	MustCreate(t, s, odd, "o:dd@x", t0)
	if r, err := s.Room(ctx, odd); err != nil || r.Presenter != "o:dd@x" {
		t.Errorf("Room(%q) = %+v, %v", odd, r, err)
	}
	if _, err := s.AddViewer(ctx, odd, store.User{Email: "v:1"}); err != nil {
		t.Errorf("AddViewer(%q): %v", odd, err)
	}
	if r, _ := s.Room(ctx, "a"); r.Viewers != 0 {
		t.Errorf("a viewer of %q counted in room a", odd)
	}
}

func testCreateRoomConflicts(t *testing.T, s store.Store) {
	ctx := t.Context()
	MustCreate(t, s, "a", "ann", time.Now())
	// The same room by someone else, and someone already presenting.
	if err := s.CreateRoom(ctx, store.Room{ID: "a", Presenter: "bob"}, store.User{Email: "bob", RoomID: "a", Role: store.RolePresenter}); !errors.Is(err, store.ErrExists) {
		t.Errorf("second room a: %v, want ErrExists", err)
	}
	if err := s.CreateRoom(ctx, store.Room{ID: "b", Presenter: "ann"}, store.User{Email: "ann", RoomID: "b", Role: store.RolePresenter}); !errors.Is(err, store.ErrExists) {
		t.Errorf("ann's second room: %v, want ErrExists", err)
	}
	// Neither failure left anything behind.
	if _, err := s.Room(ctx, "b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("room b after a failed create: %v", err)
	}
	if _, err := s.User(ctx, "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bob after a failed create: %v", err)
	}
	if r, _ := s.Room(ctx, "a"); r.Presenter != "ann" {
		t.Errorf("room a after a refused create: %+v", r)
	}
	// A viewer cannot present while watching.
	if _, err := s.AddViewer(ctx, "a", store.User{Email: "vic"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRoom(ctx, store.Room{ID: "v", Presenter: "vic"}, store.User{Email: "vic", RoomID: "v", Role: store.RolePresenter}); !errors.Is(err, store.ErrExists) {
		t.Errorf("a viewer creating a room: %v, want ErrExists", err)
	}
	// The count is the store's, whatever the caller says, and so are the
	// presenter's room and role.
	if err := s.CreateRoom(ctx, store.Room{ID: "n", Presenter: "nan", Viewers: 7}, store.User{Email: "nan", RoomID: "wrong", Role: store.RoleViewer}); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Room(ctx, "n"); r.Viewers != 0 {
		t.Errorf("new room has %d viewers, want 0", r.Viewers)
	}
	if u, _ := s.User(ctx, "nan"); u.RoomID != "n" || u.Role != store.RolePresenter {
		t.Errorf("User(nan) = %+v, want presenter of n", u)
	}
}

func testViewers(t *testing.T, s store.Store) {
	ctx := t.Context()
	MustCreate(t, s, "a", "ann", time.Now())
	for i, email := range []string{"zed", "amy", "kim"} {
		r, err := s.AddViewer(ctx, "a", store.User{Email: email, EndpointID: "ep-" + email, RoomID: "wrong", Role: store.RolePresenter})
		if err != nil {
			t.Fatal(err)
		}
		if r.Viewers != i+1 || r.ID != "a" || r.Presenter != "ann" || r.Title != "t a" {
			t.Errorf("after %s joined AddViewer returned %+v, want room a with count %d", email, r, i+1)
		}
	}
	u, err := s.User(ctx, "amy")
	if err != nil || u.RoomID != "a" || u.Role != store.RoleViewer || u.EndpointID != "ep-amy" {
		t.Errorf("User(amy) = %+v, %v; the store sets room and role", u, err)
	}
	vs, err := s.Viewers(ctx, "a")
	if err != nil || len(vs) != 3 || vs[0].Email != "amy" || vs[1].Email != "kim" || vs[2].Email != "zed" {
		t.Fatalf("Viewers(a) = %+v, %v, want amy, kim, zed", vs, err)
	}
	if vs[0].EndpointID != "ep-amy" || vs[0].RoomID != "a" || vs[0].Role != store.RoleViewer {
		t.Errorf("Viewers(a)[0] = %+v", vs[0])
	}
	if _, err := s.Viewers(ctx, "zz"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Viewers(zz): %v", err)
	}
	if rs, _ := s.Rooms(ctx); len(rs) != 1 || rs[0].Viewers != 3 {
		t.Errorf("Rooms() = %+v, want room a with 3 viewers", rs)
	}

	// Joining twice, the presenter joining, joining a room that does not exist.
	for _, tt := range []struct {
		room, email string
		want        error
	}{{"a", "amy", store.ErrExists}, {"a", "ann", store.ErrExists}, {"zz", "new", store.ErrNotFound}} {
		if _, err := s.AddViewer(ctx, tt.room, store.User{Email: tt.email}); !errors.Is(err, tt.want) {
			t.Errorf("AddViewer(%s, %s): %v, want %v", tt.room, tt.email, err, tt.want)
		}
	}
	if _, err := s.User(ctx, "new"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused join left a user: %v", err)
	}

	if err := s.RemoveViewer(ctx, "a", "kim"); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Room(ctx, "a"); r.Viewers != 2 {
		t.Errorf("after kim left the count is %d, want 2", r.Viewers)
	}
	// Leaving twice, leaving another room, and the presenter "leaving".
	for _, tt := range []struct{ room, email string }{{"a", "kim"}, {"b", "amy"}, {"a", "ann"}} {
		if err := s.RemoveViewer(ctx, tt.room, tt.email); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RemoveViewer(%s, %s): %v, want ErrNotFound", tt.room, tt.email, err)
		}
	}
	if _, err := s.User(ctx, "ann"); err != nil {
		t.Errorf("the presenter is gone after a refused RemoveViewer: %v", err)
	}
	if r, _ := s.Room(ctx, "a"); r.Viewers != 2 {
		t.Errorf("refused removals changed the count to %d", r.Viewers)
	}
	// kim can join again.
	if r, err := s.AddViewer(ctx, "a", store.User{Email: "kim"}); err != nil || r.Viewers != 3 {
		t.Errorf("kim rejoining: %+v, %v", r, err)
	}
}

func testDeleteRoom(t *testing.T, s store.Store) {
	ctx := t.Context()
	MustCreate(t, s, "a", "ann", time.Now())
	MustCreate(t, s, "b", "bob", time.Now())
	for _, v := range []string{"v1", "v2"} {
		if _, err := s.AddViewer(ctx, "a", store.User{Email: v, EndpointID: "ep-" + v, SessionID: "s-" + v}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AddViewer(ctx, "b", store.User{Email: "v3"}); err != nil {
		t.Fatal(err)
	}
	viewers, err := s.DeleteRoom(ctx, "a", "")
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(viewers, func(i, j int) bool { return viewers[i].Email < viewers[j].Email })
	if len(viewers) != 2 || viewers[0].Email != "v1" || viewers[0].EndpointID != "ep-v1" || viewers[0].SessionID != "s-v1" ||
		viewers[1].Email != "v2" || viewers[1].EndpointID != "ep-v2" {
		t.Errorf("DeleteRoom returned %+v, want v1 and v2 with their endpoints and sessions", viewers)
	}
	for _, email := range []string{"ann", "v1", "v2"} {
		if _, err := s.User(ctx, email); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("User(%s) after the room ended: %v, want ErrNotFound", email, err)
		}
	}
	for _, email := range []string{"bob", "v3"} {
		if _, err := s.User(ctx, email); err != nil {
			t.Errorf("User(%s) of another room: %v", email, err)
		}
	}
	if _, err := s.DeleteRoom(ctx, "a", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteRoom: %v, want ErrNotFound", err)
	}
	if rs, _ := s.Rooms(ctx); len(rs) != 1 || rs[0].ID != "b" || rs[0].Viewers != 1 {
		t.Errorf("Rooms after the end: %+v", rs)
	}
	// ann may present again, in the same room, and it starts empty.
	MustCreate(t, s, "a", "ann", time.Now())
	if r, _ := s.Room(ctx, "a"); r.Viewers != 0 {
		t.Errorf("room a made again has %d viewers", r.Viewers)
	}
	// An empty room returns no viewers.
	if vs, err := s.DeleteRoom(ctx, "a", ""); err != nil || len(vs) != 0 {
		t.Errorf("DeleteRoom of an empty room: %+v, %v", vs, err)
	}
}

// A cleanup that names the pipeline never removes a newer room of the same id.
func testDeleteRoomOfPipeline(t *testing.T, s store.Store) {
	ctx := t.Context()
	MustCreate(t, s, "a", "ann", time.Now())
	if _, err := s.DeleteRoom(ctx, "a", "pl-other"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteRoom with another pipeline: %v, want ErrNotFound", err)
	}
	if _, err := s.Room(ctx, "a"); err != nil {
		t.Fatalf("room a after a refused delete: %v", err)
	}
	if _, err := s.User(ctx, "ann"); err != nil {
		t.Fatalf("ann after a refused delete: %v", err)
	}
	if _, err := s.DeleteRoom(ctx, "a", "pl-a"); err != nil {
		t.Errorf("DeleteRoom with its pipeline: %v", err)
	}
	if _, err := s.Room(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("room a after its delete: %v", err)
	}
}

// testMoveViewer: a viewer's node is recorded at its join and moved when
// another node takes its media; it is listed with it.
func testMoveViewer(t *testing.T, s store.Store) {
	ctx := t.Context()
	MustCreate(t, s, "a", "ann", time.Now())
	if _, err := s.AddViewer(ctx, "a", store.User{Email: "vic", Node: "n1"}); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.User(ctx, "vic"); u.Node != "n1" || u.EndpointID != "" {
		t.Errorf("User(vic) = %+v, want node n1, no endpoint", u)
	}
	if err := s.MoveViewer(ctx, "a", "vic", "n2", "ep-2"); err != nil {
		t.Fatal(err)
	}
	vs, err := s.Viewers(ctx, "a")
	if err != nil || len(vs) != 1 || vs[0].Node != "n2" || vs[0].EndpointID != "ep-2" || vs[0].RoomID != "a" {
		t.Errorf("Viewers(a) = %+v, %v; want vic on n2 with ep-2", vs, err)
	}
	if err := s.MoveViewer(ctx, "b", "vic", "n3", "ep-3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MoveViewer(another room): %v, want ErrNotFound", err)
	}
	if err := s.MoveViewer(ctx, "a", "ann", "n3", "ep-3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MoveViewer(the presenter): %v, want ErrNotFound", err)
	}
	if vs, _ := s.DeleteRoom(ctx, "a", ""); len(vs) != 1 || vs[0].Node != "n2" {
		t.Errorf("DeleteRoom(a) = %+v, want vic on n2", vs)
	}
}

func testBindSession(t *testing.T, s store.Store) {
	ctx := t.Context()
	MustCreate(t, s, "a", "ann", time.Now())
	if err := s.BindSession(ctx, "ann", "s1"); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.User(ctx, "ann"); u.SessionID != "s1" || u.Role != store.RolePresenter || u.EndpointID != "ep-ann" {
		t.Errorf("User(ann) = %+v, want session s1, still presenter with its endpoint", u)
	}
	if err := s.BindSession(ctx, "nobody", "s2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("BindSession(nobody): %v, want ErrNotFound", err)
	}
	if _, err := s.User(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused BindSession made a user: %v", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Error(err)
	}
}

// RestoreRoom puts back what a process still holds, keeps what is recorded,
// and refuses what belongs to someone else.
func testRestoreRoom(t *testing.T, s store.Store) {
	ctx := t.Context()
	t0 := time.Unix(2000, 0)
	room := store.Room{ID: "a", Title: "T", ProfileURL: "P", Presenter: "ann", PipelineID: "pl-a", CreatedAt: t0, Owner: "me"}
	ann := store.User{Email: "ann", EndpointID: "ep-ann", SessionID: "s-ann"}
	viewers := []store.User{{Email: "v1", EndpointID: "ep-v1", SessionID: "s-v1"}, {Email: "v2", EndpointID: "ep-v2"}}

	// Into an empty store: everything comes back.
	skipped, err := s.RestoreRoom(ctx, room, ann, viewers)
	if err != nil || len(skipped) != 0 {
		t.Fatalf("RestoreRoom = %v, %v", skipped, err)
	}
	r, err := s.Room(ctx, "a")
	if err != nil || r.Title != "T" || r.Owner != "me" || r.PipelineID != "pl-a" || !r.CreatedAt.Equal(t0) || r.Viewers != 2 {
		t.Errorf("restored room = %+v, %v", r, err)
	}
	if u, err := s.User(ctx, "ann"); err != nil || u.Role != store.RolePresenter || u.RoomID != "a" || u.SessionID != "s-ann" {
		t.Errorf("restored presenter = %+v, %v", u, err)
	}
	if u, err := s.User(ctx, "v1"); err != nil || u.Role != store.RoleViewer || u.RoomID != "a" || u.EndpointID != "ep-v1" {
		t.Errorf("restored viewer = %+v, %v", u, err)
	}

	// Again, with one viewer gone from the store and another watching
	// elsewhere: the first comes back, the second is skipped.
	if err := s.RemoveViewer(ctx, "a", "v1"); err != nil {
		t.Fatal(err)
	}
	MustCreate(t, s, "b", "bob", t0)
	if _, err := s.AddViewer(ctx, "b", store.User{Email: "v3"}); err != nil {
		t.Fatal(err)
	}
	skipped, err = s.RestoreRoom(ctx, room, ann, append(viewers, store.User{Email: "v3"}))
	if err != nil || fmt.Sprint(skipped) != "[v3]" {
		t.Errorf("second RestoreRoom = %v, %v, want v3 skipped", skipped, err)
	}
	if r, _ := s.Room(ctx, "a"); r.Viewers != 2 {
		t.Errorf("after the second restore room a has %d viewers, want 2", r.Viewers)
	}
	if u, _ := s.User(ctx, "v3"); u.RoomID != "b" {
		t.Errorf("v3 moved to %q by a restore", u.RoomID)
	}
	if r, _ := s.Room(ctx, "b"); r.Viewers != 1 {
		t.Errorf("room b has %d viewers, want 1", r.Viewers)
	}

	// Another pipeline in the room, or a presenter of another room: refused,
	// and nothing changes.
	other := room
	other.PipelineID = "pl-new"
	if _, err := s.RestoreRoom(ctx, other, ann, nil); !errors.Is(err, store.ErrExists) {
		t.Errorf("RestoreRoom over another pipeline: %v, want ErrExists", err)
	}
	c := store.Room{ID: "c", Presenter: "bob", PipelineID: "pl-c", Owner: "me"}
	if _, err := s.RestoreRoom(ctx, c, store.User{Email: "bob"}, nil); !errors.Is(err, store.ErrExists) {
		t.Errorf("RestoreRoom of a presenter of another room: %v, want ErrExists", err)
	}
	if _, err := s.Room(ctx, "c"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused RestoreRoom made room c: %v", err)
	}
	// What was restored ends like any room.
	if vs, err := s.DeleteRoom(ctx, "a", "pl-a"); err != nil || len(vs) != 2 {
		t.Errorf("DeleteRoom of the restored room: %+v, %v", vs, err)
	}
	if _, err := s.User(ctx, "ann"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ann after the end: %v", err)
	}
}

func testHeartbeat(t *testing.T, s store.Store) {
	ctx := t.Context()
	if alive, err := s.OwnerAlive(ctx, "p1"); err != nil || alive {
		t.Errorf("OwnerAlive before any heartbeat = %v, %v", alive, err)
	}
	if renewed, err := s.Heartbeat(ctx, "p1", time.Minute); err != nil || renewed {
		t.Errorf("first Heartbeat = %v, %v, want not renewed", renewed, err)
	}
	if renewed, err := s.Heartbeat(ctx, "p1", time.Minute); err != nil || !renewed {
		t.Errorf("second Heartbeat = %v, %v, want renewed", renewed, err)
	}
	if alive, err := s.OwnerAlive(ctx, "p1"); err != nil || !alive {
		t.Errorf("OwnerAlive after a heartbeat = %v, %v", alive, err)
	}
	if alive, _ := s.OwnerAlive(ctx, "p2"); alive {
		t.Error("p2 alive on p1's heartbeat")
	}
	if err := s.Retire(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if alive, _ := s.OwnerAlive(ctx, "p1"); alive {
		t.Error("p1 alive after Retire")
	}

	// A heartbeat expires after its TTL, and the next one says so.
	const ttl = 150 * time.Millisecond
	if _, err := s.Heartbeat(ctx, "p3", ttl); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		alive, err := s.OwnerAlive(ctx, "p3")
		if err != nil {
			t.Fatal(err)
		}
		if !alive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("p3 still alive 10s after a heartbeat of %s", ttl)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if renewed, err := s.Heartbeat(ctx, "p3", time.Minute); err != nil || renewed {
		t.Errorf("Heartbeat after expiry = %v, %v, want not renewed", renewed, err)
	}
}

// Concurrent joins and leaves keep each room's count equal to its viewers.
func testConcurrentViewers(t *testing.T, s store.Store) {
	ctx := t.Context()
	MustCreate(t, s, "a", "ann", time.Now())
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				email := fmt.Sprintf("v%d-%d", g, i%5)
				r, err := s.AddViewer(ctx, "a", store.User{Email: email})
				if err != nil {
					t.Errorf("AddViewer(%s): %v", email, err)
					return
				}
				if r.Viewers < 1 || r.Viewers > 8 {
					t.Errorf("count %d with at most 8 viewers", r.Viewers)
				}
				if _, err := s.Rooms(ctx); err != nil {
					t.Error(err)
				}
				if err := s.RemoveViewer(ctx, "a", email); err != nil {
					t.Errorf("RemoveViewer(%s): %v", email, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	r, _ := s.Room(ctx, "a")
	vs, _ := s.Viewers(ctx, "a")
	if r.Viewers != 0 || len(vs) != 0 {
		t.Errorf("after every viewer left: count %d, viewers %+v", r.Viewers, vs)
	}
}
