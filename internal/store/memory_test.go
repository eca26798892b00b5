package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

var ctx = context.Background()

func mustCreate(t *testing.T, m *Memory, id, presenter string, at time.Time) {
	t.Helper()
	err := m.CreateRoom(ctx, Room{ID: id, Title: "t " + id, Presenter: presenter, PipelineID: "pl-" + id, CreatedAt: at},
		User{Email: presenter, RoomID: id, Role: RolePresenter, EndpointID: "ep-" + presenter})
	if err != nil {
		t.Fatalf("CreateRoom(%s): %v", id, err)
	}
}

func TestMemoryRooms(t *testing.T) {
	m := NewMemory()
	t0 := time.Unix(1000, 0)
	mustCreate(t, m, "b", "bob", t0)
	mustCreate(t, m, "a", "ann", t0)                   // same time: ordered by id
	mustCreate(t, m, "c", "cid", t0.Add(-time.Minute)) // oldest first

	rs, err := m.Rooms(ctx)
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
	r, err := m.Room(ctx, "a")
	if err != nil || r.Presenter != "ann" || r.PipelineID != "pl-a" || r.Viewers != 0 {
		t.Errorf("Room(a) = %+v, %v", r, err)
	}
	if _, err := m.Room(ctx, "zz"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Room(zz): %v, want ErrNotFound", err)
	}
	u, err := m.User(ctx, "ann")
	if err != nil || u.Role != RolePresenter || u.RoomID != "a" || u.EndpointID != "ep-ann" {
		t.Errorf("User(ann) = %+v, %v", u, err)
	}
}

func TestMemoryCreateRoomConflicts(t *testing.T) {
	m := NewMemory()
	mustCreate(t, m, "a", "ann", time.Now())
	// The same room by someone else, and someone already presenting.
	if err := m.CreateRoom(ctx, Room{ID: "a", Presenter: "bob"}, User{Email: "bob", RoomID: "a", Role: RolePresenter}); !errors.Is(err, ErrExists) {
		t.Errorf("second room a: %v, want ErrExists", err)
	}
	if err := m.CreateRoom(ctx, Room{ID: "b", Presenter: "ann"}, User{Email: "ann", RoomID: "b", Role: RolePresenter}); !errors.Is(err, ErrExists) {
		t.Errorf("ann's second room: %v, want ErrExists", err)
	}
	// Neither failure left anything behind.
	if _, err := m.Room(ctx, "b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("room b after a failed create: %v", err)
	}
	if _, err := m.User(ctx, "bob"); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob after a failed create: %v", err)
	}
	// A viewer cannot present while watching.
	if _, err := m.AddViewer(ctx, "a", User{Email: "vic"}); err != nil {
		t.Fatal(err)
	}
	if err := m.CreateRoom(ctx, Room{ID: "v", Presenter: "vic"}, User{Email: "vic", RoomID: "v", Role: RolePresenter}); !errors.Is(err, ErrExists) {
		t.Errorf("a viewer creating a room: %v, want ErrExists", err)
	}
	// The count is the store's, whatever the caller says.
	if err := m.CreateRoom(ctx, Room{ID: "n", Presenter: "nan", Viewers: 7}, User{Email: "nan", RoomID: "n", Role: RolePresenter}); err != nil {
		t.Fatal(err)
	}
	if r, _ := m.Room(ctx, "n"); r.Viewers != 0 {
		t.Errorf("new room has %d viewers, want 0", r.Viewers)
	}
}

func TestMemoryViewers(t *testing.T) {
	m := NewMemory()
	mustCreate(t, m, "a", "ann", time.Now())
	for i, email := range []string{"zed", "amy", "kim"} {
		r, err := m.AddViewer(ctx, "a", User{Email: email, EndpointID: "ep-" + email, RoomID: "wrong", Role: RolePresenter})
		if err != nil {
			t.Fatal(err)
		}
		if r.Viewers != i+1 {
			t.Errorf("after %s joined the count is %d, want %d", email, r.Viewers, i+1)
		}
	}
	u, err := m.User(ctx, "amy")
	if err != nil || u.RoomID != "a" || u.Role != RoleViewer || u.EndpointID != "ep-amy" {
		t.Errorf("User(amy) = %+v, %v; the store sets room and role", u, err)
	}
	vs, err := m.Viewers(ctx, "a")
	if err != nil || len(vs) != 3 || vs[0].Email != "amy" || vs[1].Email != "kim" || vs[2].Email != "zed" {
		t.Errorf("Viewers(a) = %+v, %v, want amy, kim, zed", vs, err)
	}
	if _, err := m.Viewers(ctx, "zz"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Viewers(zz): %v", err)
	}

	// Joining twice, the presenter joining, joining a room that does not exist.
	for _, tt := range []struct {
		room, email string
		want        error
	}{{"a", "amy", ErrExists}, {"a", "ann", ErrExists}, {"zz", "new", ErrNotFound}} {
		if _, err := m.AddViewer(ctx, tt.room, User{Email: tt.email}); !errors.Is(err, tt.want) {
			t.Errorf("AddViewer(%s, %s): %v, want %v", tt.room, tt.email, err, tt.want)
		}
	}

	if err := m.RemoveViewer(ctx, "a", "kim"); err != nil {
		t.Fatal(err)
	}
	if r, _ := m.Room(ctx, "a"); r.Viewers != 2 {
		t.Errorf("after kim left the count is %d, want 2", r.Viewers)
	}
	// Leaving twice, leaving another room, and the presenter "leaving".
	for _, tt := range []struct{ room, email string }{{"a", "kim"}, {"b", "amy"}, {"a", "ann"}} {
		if err := m.RemoveViewer(ctx, tt.room, tt.email); !errors.Is(err, ErrNotFound) {
			t.Errorf("RemoveViewer(%s, %s): %v, want ErrNotFound", tt.room, tt.email, err)
		}
	}
	if _, err := m.User(ctx, "ann"); err != nil {
		t.Errorf("the presenter is gone after a refused RemoveViewer: %v", err)
	}
	if r, _ := m.Room(ctx, "a"); r.Viewers != 2 {
		t.Errorf("refused removals changed the count to %d", r.Viewers)
	}
	// kim can join again.
	if r, err := m.AddViewer(ctx, "a", User{Email: "kim"}); err != nil || r.Viewers != 3 {
		t.Errorf("kim rejoining: %+v, %v", r, err)
	}
}

func TestMemoryDeleteRoom(t *testing.T) {
	m := NewMemory()
	mustCreate(t, m, "a", "ann", time.Now())
	mustCreate(t, m, "b", "bob", time.Now())
	for _, v := range []string{"v1", "v2"} {
		if _, err := m.AddViewer(ctx, "a", User{Email: v, EndpointID: "ep-" + v}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.AddViewer(ctx, "b", User{Email: "v3"}); err != nil {
		t.Fatal(err)
	}
	viewers, err := m.DeleteRoom(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, v := range viewers {
		got[v.Email] = v.EndpointID
	}
	if len(got) != 2 || got["v1"] != "ep-v1" || got["v2"] != "ep-v2" {
		t.Errorf("DeleteRoom returned %+v, want v1 and v2 with their endpoints", viewers)
	}
	for _, email := range []string{"ann", "v1", "v2"} {
		if _, err := m.User(ctx, email); !errors.Is(err, ErrNotFound) {
			t.Errorf("User(%s) after the room ended: %v, want ErrNotFound", email, err)
		}
	}
	for _, email := range []string{"bob", "v3"} {
		if _, err := m.User(ctx, email); err != nil {
			t.Errorf("User(%s) of another room: %v", email, err)
		}
	}
	if _, err := m.DeleteRoom(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DeleteRoom: %v, want ErrNotFound", err)
	}
	if rs, _ := m.Rooms(ctx); len(rs) != 1 || rs[0].ID != "b" {
		t.Errorf("Rooms after the end: %+v", rs)
	}
	// ann may present again.
	mustCreate(t, m, "a2", "ann", time.Now())
}

func TestMemoryBindSession(t *testing.T) {
	m := NewMemory()
	mustCreate(t, m, "a", "ann", time.Now())
	if err := m.BindSession(ctx, "ann", "s1"); err != nil {
		t.Fatal(err)
	}
	if u, _ := m.User(ctx, "ann"); u.SessionID != "s1" || u.Role != RolePresenter {
		t.Errorf("User(ann) = %+v, want session s1, still presenter", u)
	}
	if err := m.BindSession(ctx, "nobody", "s2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("BindSession(nobody): %v, want ErrNotFound", err)
	}
	if err := m.Ping(ctx); err != nil {
		t.Error(err)
	}
}

// Concurrent joins and leaves keep each room's count equal to its viewers.
func TestMemoryConcurrentViewers(t *testing.T) {
	m := NewMemory()
	mustCreate(t, m, "a", "ann", time.Now())
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				email := fmt.Sprintf("v%d-%d", g, i%5)
				if _, err := m.AddViewer(ctx, "a", User{Email: email}); err != nil {
					t.Errorf("AddViewer(%s): %v", email, err)
					return
				}
				if _, err := m.Rooms(ctx); err != nil {
					t.Error(err)
				}
				if err := m.RemoveViewer(ctx, "a", email); err != nil {
					t.Errorf("RemoveViewer(%s): %v", email, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	r, _ := m.Room(ctx, "a")
	vs, _ := m.Viewers(ctx, "a")
	if r.Viewers != 0 || len(vs) != 0 {
		t.Errorf("after every viewer left: count %d, viewers %+v", r.Viewers, vs)
	}
}
