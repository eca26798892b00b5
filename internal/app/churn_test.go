package app_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/testpeer"
)

// churnCycle is one viewer's visit.
type churnCycle struct {
	i      int
	media  bool // a real WebRTC viewer that must receive intact media
	abrupt bool // leaves by dropping its WebSocket instead of DELETE /room/view
}

// 200 viewers come and go while a broadcast runs, four at a time: half
// leave cleanly (DELETE /room/view), half drop their WebSocket. 160 are real
// WebRTC viewers that must each receive intact media with a keyframe before
// leaving; the other 40 only signal (join, offer, get an answer, leave), so
// the server creates a peer connection that never connects and must release
// it all the same. Afterwards the room has no viewer, the presenter's
// pipeline no endpoint but its own, the presenter still streams, and once
// the room ends the server is back to the goroutines it had before the
// broadcast (and, when the test ends, to those it had before it started).
func TestViewerChurn(t *testing.T) {
	const (
		cycles    = 200
		withMedia = 160
		workers   = 4
	)
	srv := testpeer.StartServer(t, nil)
	idle := runtime.NumGoroutine()
	const ann = "ann@example.com"
	p := testpeer.MustPresenter(t, srv, ann, ann, testpeer.PresenterOptions{})
	offer := viewerOfferSDP(t)

	jobs := make(chan churnCycle)
	errs := make(chan error, cycles)
	var (
		mu         sync.Mutex
		firstFrame []time.Duration
	)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range jobs {
				d, err := runChurnCycle(ctx, srv, ann, c, offer)
				if err != nil {
					errs <- fmt.Errorf("cycle %d (media %v, abrupt %v): %w", c.i, c.media, c.abrupt, err)
					continue
				}
				if c.media {
					mu.Lock()
					firstFrame = append(firstFrame, d)
					mu.Unlock()
				}
			}
		}()
	}
	start := time.Now()
	for i := 0; i < cycles; i++ {
		// One in five only signals; clean and abrupt alternate.
		jobs <- churnCycle{i: i, media: i%5 != 4, abrupt: i%2 == 1}
	}
	close(jobs)
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 10 {
			t.Error(err)
		}
	}
	if n > 0 {
		t.Fatalf("%d of %d cycles failed", n, cycles)
	}
	sort.Slice(firstFrame, func(i, j int) bool { return firstFrame[i] < firstFrame[j] })
	if len(firstFrame) != withMedia {
		t.Fatalf("%d viewers with media, want %d", len(firstFrame), withMedia)
	}
	t.Logf("%d cycles in %s; time to first keyframe over %d viewers: median %s, max %s",
		cycles, time.Since(start).Round(time.Millisecond), len(firstFrame),
		firstFrame[len(firstFrame)/2], firstFrame[len(firstFrame)-1])

	// Every viewer is gone, and only the presenter's endpoint is left.
	waitRoomCount(t, srv, ann, "0")
	waitEndpoints(t, srv, ann, "presenter:"+ann)
	srv.WaitCounts(t, timeout, live.Counts{Rooms: 1, Sessions: 1, Pipelines: 1, Endpoints: 1})
	// The broadcast survived it all.
	last := testpeer.MustViewer(t, srv, "last@example.com", ann, testpeer.ViewerOptions{})
	wantMedia(t, last, 15)
	last.Close()

	// Once the room ends, the server is as idle as before the broadcast.
	wantStatus(t, srv.REST.EndRoom(ann), http.StatusNoContent)
	p.Close()
	srv.WaitCounts(t, timeout, live.Counts{})
	srv.REST.CloseIdle()
	if err := testpeer.WaitGoroutines(idle); err != nil {
		t.Errorf("after the room ended: %v", err)
	}
}

// runChurnCycle joins, watches or just signals, and leaves; it returns the
// time to the first keyframe for a viewer with media.
func runChurnCycle(ctx context.Context, srv *testpeer.Server, room string, c churnCycle, offer string) (time.Duration, error) {
	email := fmt.Sprintf("churn%03d@example.com", c.i)
	var first time.Duration
	var ws *testpeer.WS
	var closePeer func()
	if c.media {
		v, err := srv.JoinViewer(ctx, email, room, testpeer.ViewerOptions{})
		if err != nil {
			return 0, err
		}
		ws, closePeer = v.WS, v.Peer.Close
		if err := v.Peer.WaitMedia(ctx, 5); err != nil {
			v.Drop()
			return 0, err
		}
		first = v.Peer.Stats().FirstKeyframe
	} else {
		if err := srv.REST.Join(email, room).Want(http.StatusCreated); err != nil {
			return 0, err
		}
		var err error
		if ws, err = testpeer.DialWS(ctx, srv.WSURL); err != nil {
			return 0, err
		}
		closePeer = func() {}
		if err := ws.Send(testpeer.OfferMessage{ID: testpeer.IDViewer, RoomID: room, Email: email, SDPOffer: offer}); err != nil {
			ws.Drop()
			return 0, err
		}
		m, err := ws.Next(ctx, testpeer.IDViewerResponse)
		if err == nil && (m.Response != "accepted" || m.SDPAnswer == "") {
			err = fmt.Errorf("viewer offer: %s", m.Raw)
		}
		if err != nil {
			ws.Drop()
			return 0, err
		}
	}
	if c.abrupt {
		ws.Drop()
		closePeer()
		return first, nil
	}
	err := srv.REST.Leave(email).Want(http.StatusNoContent)
	ws.Close()
	closePeer()
	return first, err
}
