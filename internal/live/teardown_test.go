package live_test

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/sfu"
	"github.com/onair-live/onair/internal/store"
	"github.com/onair-live/onair/internal/testpeer"
)

// gatedStore is the memory store whose DeleteRoom waits for the test: it
// holds a room's teardown at its last step.
type gatedStore struct {
	*store.Memory
	entered chan struct{} // receives when DeleteRoom is called
	gate    chan struct{} // DeleteRoom returns once this is closed
}

func (s *gatedStore) DeleteRoom(ctx context.Context, id, pipelineID string) ([]store.User, error) {
	s.entered <- struct{}{}
	<-s.gate
	return s.Memory.DeleteRoom(ctx, id, pipelineID)
}

// Shutdown returns only once every room is gone, including one whose
// teardown another goroutine had begun (the presenter's media failing as the
// server stops): otherwise its record is deleted after the store is closed,
// and a shared store keeps a room that no process serves.
func TestShutdownWaitsForATeardownInProgress(t *testing.T) {
	testpeer.CheckGoroutines(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	engine, err := sfu.New(sfu.Config{Loopback: true,
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close()
	st := &gatedStore{Memory: store.NewMemory(), entered: make(chan struct{}), gate: make(chan struct{})}
	svc := live.New(st, engine, live.Options{Logger: log})
	ctx := context.Background()
	if _, err := svc.StartBroadcast(ctx, auth.Trusted("ann"), live.StartRequest{RoomID: "room-a", Title: "t", ProfileURL: "p"}); err != nil {
		t.Fatal(err)
	}

	ended := make(chan error, 1)
	go func() { ended <- svc.EndBroadcast(ctx, auth.Trusted("ann")) }()
	<-st.entered // the first teardown is at its last step

	stopped := make(chan struct{})
	go func() { svc.Shutdown(ctx); close(stopped) }()
	select {
	case <-stopped:
		t.Error("Shutdown returned while the room's teardown was still running")
	case <-time.After(300 * time.Millisecond):
	}
	close(st.gate)
	if err := <-ended; err != nil {
		t.Error(err)
	}
	<-stopped
	if c := svc.Counts(); c != (live.Counts{}) {
		t.Errorf("after Shutdown: %+v", c)
	}
	if rs, _ := st.Rooms(ctx); len(rs) != 0 {
		t.Errorf("after Shutdown the store still has %+v", rs)
	}
}
