package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/store"
	"github.com/onair-live/onair/internal/store/redistest"
)

// nodes makes a cluster of the named nodes on one real Redis, each with a
// live registry entry, and a room whose origin is the first.
func nodes(t *testing.T, fanout int, ids ...string) map[string]*Cluster {
	t.Helper()
	srv := redistest.Start(t)
	st, err := store.NewRedis(srv.URL, "p:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ctx := context.Background()
	if err := st.CreateRoom(ctx, store.Room{ID: "r", Presenter: "ann", PipelineID: "pl", Owner: ids[0]},
		store.User{Email: "ann", RoomID: "r", Role: store.RolePresenter}); err != nil {
		t.Fatal(err)
	}
	out := map[string]*Cluster{}
	for _, id := range ids {
		c, err := New(Config{Node: id, AdvertiseURL: "http://" + id + "/", Secret: []byte(strings.Repeat("s", 32)),
			Fanout: fanout, TTL: time.Minute}, st.Client(), st.Prefix(), st.RoomKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
		out[id] = c
	}
	return out
}

// wantParent places node under a parent and checks which.
func wantParent(t *testing.T, c *Cluster, want string) {
	t.Helper()
	n, err := c.place(context.Background(), "r")
	if err != nil {
		t.Fatalf("%s: %v", c.cfg.Node, err)
	}
	if n.ID != want || n.URL != "http://"+want {
		t.Errorf("%s placed under %s (%s), want %s", c.cfg.Node, n.ID, n.URL, want)
	}
}

// TestPlacementBreadthFirst: the origin until it has fanout pulls, then its
// children breadth first, the fewest pulls first; a draining node is no
// parent; a node never pulls from below itself.
func TestPlacementBreadthFirst(t *testing.T) {
	cs := nodes(t, 2, "o", "n1", "n2", "n3", "n4", "n5", "n6")
	wantParent(t, cs["n1"], "o")
	wantParent(t, cs["n2"], "o")
	wantParent(t, cs["n3"], "n1")
	wantParent(t, cs["n4"], "n2")
	wantParent(t, cs["n5"], "n1")
	cs["n2"].Drain(context.Background())
	wantParent(t, cs["n6"], "n3") // n1 full, n2 draining: the next tier
	if p, _ := cs["n6"].Parent(context.Background(), "r"); p != "n3" {
		t.Errorf("n6's recorded parent: %q", p)
	}

	// n1 pulls again (its parent failed): not from o, where it was, nor
	// from its own subtree (n3, n5, n6), nor from n2, which drains: from
	// n4, below n2.
	wantParent(t, cs["n1"], "n4")
}

// TestPlacementAvoidsUnreachable: a node this one could not reach is
// neither a parent nor counted against its parent's fan-out.
func TestPlacementAvoidsUnreachable(t *testing.T) {
	cs := nodes(t, 1, "o", "a", "b")
	wantParent(t, cs["a"], "o")
	cs["b"].avoid("a")
	wantParent(t, cs["b"], "o") // a is believed dead: o has a free slot
	if err := cs["b"].unplace(context.Background(), "r", "o"); err != nil {
		t.Fatal(err)
	}
	if p, _ := cs["b"].Parent(context.Background(), "r"); p != "" {
		t.Errorf("b's parent after unplace: %q", p)
	}
	if _, err := cs["a"].place(context.Background(), "nothing"); err == nil || !strings.Contains(err.Error(), "not live") {
		t.Errorf("placing a room that is not live: %v", err)
	}
}
