package live_test

import (
	"context"
	"reflect"
	"sync"
	"testing"

	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/sfu"
	"github.com/onair-live/onair/internal/store"
)

type recorder struct {
	mu     sync.Mutex
	events []live.Event
}

func (r *recorder) add(e live.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// summary is what an observer learns from each event, in order.
func (r *recorder) summary() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		s := string(e.Type) + " " + e.RoomID
		if e.User != "" {
			s += " " + e.User
		}
		if e.Reason != "" {
			s += " " + e.Reason
		}
		out = append(out, s)
	}
	return out
}

func newService(t *testing.T, rec *recorder) *live.Service {
	t.Helper()
	engine, err := sfu.New(sfu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = engine.Close() })
	return live.New(store.NewMemory(), engine, live.Options{OnEvent: rec.add})
}

// The lifecycle is observable, in order, with the reasons webhooks report.
func TestLifecycleEvents(t *testing.T) {
	rec := &recorder{}
	svc := newService(t, rec)
	ctx := context.Background()
	if _, err := svc.StartBroadcast(ctx, auth.Trusted("p@x"), live.StartRequest{RoomID: "r1", Title: "T", ProfileURL: "u"}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"a@x", "b@x", "c@x"} {
		if _, err := svc.Join(ctx, auth.Trusted(v), "r1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.Leave(ctx, auth.Trusted("a@x")); err != nil {
		t.Fatal(err)
	}
	if err := svc.EndBroadcast(ctx, auth.Trusted("p@x")); err != nil {
		t.Fatal(err)
	}
	got := rec.summary()
	want := []string{
		"room.started r1",
		"viewer.joined r1 a@x", "viewer.joined r1 b@x", "viewer.joined r1 c@x",
		"viewer.left r1 a@x leave",
	}
	if !reflect.DeepEqual(got[:5], want) {
		t.Fatalf("events:\n got %q\nwant %q", got[:5], want)
	}
	rest := got[5:]
	if len(rest) != 3 || rest[2] != "room.finished r1 ended" {
		t.Fatalf("after the end: %q, want two viewers leaving (ended) then room.finished r1 ended", rest)
	}
	for _, e := range rest[:2] {
		if e != "viewer.left r1 b@x ended" && e != "viewer.left r1 c@x ended" {
			t.Errorf("unexpected %q", e)
		}
	}
	if c := svc.Counts(); c != (live.Counts{}) {
		t.Errorf("counts after the end: %+v", c)
	}
}

// Shutdown ends every room with reason shutdown.
func TestShutdownEvents(t *testing.T) {
	rec := &recorder{}
	svc := newService(t, rec)
	ctx := context.Background()
	for _, r := range []string{"r1", "r2"} {
		if _, err := svc.StartBroadcast(ctx, auth.Trusted("p-"+r), live.StartRequest{RoomID: r, Title: "T", ProfileURL: "u"}); err != nil {
			t.Fatal(err)
		}
	}
	svc.Shutdown(ctx)
	got := rec.summary()
	want := []string{"room.started r1", "room.started r2", "room.finished r1 shutdown", "room.finished r2 shutdown"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events:\n got %q\nwant %q", got, want)
	}
	if _, err := svc.StartBroadcast(ctx, auth.Trusted("late"), live.StartRequest{RoomID: "r3", Title: "T", ProfileURL: "u"}); err == nil {
		t.Fatal("a broadcast started after shutdown")
	}
}
