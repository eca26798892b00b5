package redismode

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/store/redistest"
	"github.com/onair-live/onair/internal/testpeer"
)

// An onair killed with rooms in Redis leaves them there; the next onair on
// that Redis ends them once the dead one's heartbeat has expired, as if their
// presenters had dropped: the records go, the webhooks fire, and the
// presenters and viewers are free again. A clean shutdown then leaves Redis
// empty.
func TestKillAndRestartReconciles(t *testing.T) {
	srv := redistest.Start(t)
	hooks := newHookSink(t)
	const ttl = 1500 * time.Millisecond
	a := startProc(t, "a", srv.URL, "kr:", ttl)
	want(t, a.REST.CreateRoom("ann@x", "room-a", "A", "https://x/ann.png"), http.StatusCreated)
	want(t, a.REST.CreateRoom("bob@x", "room-b", "B", "https://x/bob.png"), http.StatusCreated)
	want(t, a.REST.Join("v1@x", "room-a"), http.StatusCreated)
	want(t, a.REST.Join("v2@x", "room-a"), http.StatusCreated)
	// Media too: a presenter streaming, which the kill cuts off.
	p := testpeer.MustPresenter(t, a.Server, "cid@x", "room-c", testpeer.PresenterOptions{})
	if got := roomList(a.REST); fmt.Sprint(got) != "[room-a:2 room-b:0 room-c:0]" {
		t.Fatalf("rooms on a: %v", got)
	}

	a.kill9()
	p.Drop()
	if got := len(keys(t, srv)); got < 8 {
		t.Fatalf("after the kill Redis has %d keys, want the dead process's rooms: %q", got, keys(t, srv))
	}

	b := startProc(t, "b", srv.URL, "kr:", ttl, hooks.flags()...)
	waitFor(t, "the dead process's rooms ended", func() bool {
		got := roomList(b.REST)
		return got != nil && len(got) == 0
	})
	waitFor(t, "only b's heartbeat left in Redis", func() bool {
		ks := keys(t, srv)
		return len(ks) == 1 && strings.HasPrefix(ks[0], "kr:owner:")
	})
	for _, room := range []string{"room-a", "room-b", "room-c"} {
		if b.count(`msg="broadcast ended"`, "room="+room, "reason=reclaimed") != 1 {
			t.Errorf("b did not end %s once with reason reclaimed", room)
		}
	}
	waitFor(t, "webhooks of the ended rooms", func() bool {
		return hooks.has("room.finished", "room-a", "", "reclaimed") &&
			hooks.has("room.finished", "room-b", "", "reclaimed") &&
			hooks.has("room.finished", "room-c", "", "reclaimed") &&
			hooks.has("viewer.left", "room-a", "v1@x", "ended") &&
			hooks.has("viewer.left", "room-a", "v2@x", "ended")
	})

	// Everyone is free again, on the new process.
	want(t, b.REST.CreateRoom("ann@x", "room-a", "A", "https://x/ann.png"), http.StatusCreated)
	want(t, b.REST.Join("v1@x", "room-a"), http.StatusCreated)
	want(t, b.REST.CreateRoom("v2@x", "room-v2", "V2", "https://x/v2.png"), http.StatusCreated)
	if got := roomList(b.REST); fmt.Sprint(got) != "[room-a:1 room-v2:0]" {
		t.Errorf("rooms on b: %v", got)
	}
	b.stop(t)
	if ks := keys(t, srv); len(ks) != 0 {
		t.Errorf("keys left after a clean shutdown: %q", ks)
	}
}

// Two processes on one Redis see the same rooms and serve their own; each
// leaves the other's alone while it is alive. When one is killed, the other
// ends its rooms once its heartbeat expires, and goes on serving its own
// broadcast, media and all.
func TestTwoProcessesOneKilled(t *testing.T) {
	srv := redistest.Start(t)
	hooks := newHookSink(t)
	const ttl = 2 * time.Second
	a := startProc(t, "a", srv.URL, "two:", ttl)
	b := startProc(t, "b", srv.URL, "two:", ttl, hooks.flags()...)

	want(t, a.REST.CreateRoom("ann@x", "room-a", "A", "https://x/ann.png"), http.StatusCreated)
	want(t, a.REST.Join("va@x", "room-a"), http.StatusCreated)
	pb := testpeer.MustPresenter(t, b.Server, "bob@x", "room-b", testpeer.PresenterOptions{})
	vb := testpeer.MustViewer(t, b.Server, "vb@x", "room-b", testpeer.ViewerOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := vb.Peer.WaitMedia(ctx, 10); err != nil {
		t.Fatal(err)
	}

	// One state: both list both rooms, with their counts.
	for _, p := range []*proc{a, b} {
		if got := roomList(p.REST); fmt.Sprint(got) != "[room-a:1 room-b:1]" {
			t.Errorf("rooms on %s: %v", p.name, got)
		}
	}
	// A viewer must reach the process that holds the room; elsewhere the
	// error says so, and nothing is recorded.
	r := b.REST.Join("lost@x", "room-a")
	want(t, r, http.StatusBadRequest)
	if e := r.APIError(); e.Name != "NO_ROOM" || e.Code != 5102 || !strings.Contains(e.Message, "another onair process") {
		t.Errorf("join on the wrong process: %s", r)
	}
	want(t, a.REST.Join("lost@x", "room-a"), http.StatusCreated)

	// While a is alive, b leaves its rooms alone, for longer than a TTL.
	from := b.count(`msg="store synced"`)
	waitFor(t, "b syncing for more than a TTL", func() bool { return b.count(`msg="store synced"`) >= from+4 })
	if got := roomList(b.REST); fmt.Sprint(got) != "[room-a:2 room-b:1]" {
		t.Fatalf("rooms on b while a is alive: %v", got)
	}

	a.kill9()
	waitFor(t, "b ending a's room", func() bool { return fmt.Sprint(roomList(b.REST)) == "[room-b:1]" })
	waitFor(t, "the webhook of a's room", func() bool { return hooks.has("room.finished", "room-a", "", "reclaimed") })
	if hooks.has("room.finished", "room-b", "", "reclaimed") {
		t.Errorf("b's own room was reclaimed: %s", hooks)
	}

	// b's broadcast never stopped, and b serves it as before.
	if err := vb.Peer.WaitMoreMedia(ctx, 30); err != nil {
		t.Fatal(err)
	}
	vc := testpeer.MustViewer(t, b.Server, "vc@x", "room-b", testpeer.ViewerOptions{})
	if err := vc.Peer.WaitMedia(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if got := roomList(b.REST); fmt.Sprint(got) != "[room-b:2]" {
		t.Errorf("rooms on b: %v", got)
	}
	for _, k := range keys(t, srv) {
		if strings.Contains(k, "room-a") || strings.Contains(k, "ann@x") || strings.Contains(k, "va@x") || strings.Contains(k, "lost@x") {
			t.Errorf("a key of a's room is left: %s", k)
		}
	}

	want(t, b.REST.EndRoom("bob@x"), http.StatusNoContent)
	if _, err := vb.WS.NextWithin(timeout, testpeer.IDStop); err != nil {
		t.Errorf("vb after the end: %v", err)
	}
	pb.Close()
	vb.Close()
	vc.Close()
	b.stop(t)
	if ks := keys(t, srv); len(ks) != 0 {
		t.Errorf("keys left after b's clean shutdown: %q", ks)
	}
}
