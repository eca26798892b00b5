package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/testpeer"
)

// floodFrames are what a hostile client sends, in turn: malformed JSON,
// binary garbage, an unknown id, a takeover of the broadcast, a candidate
// for it, and now and then a frame over the size cap.
func floodFrames(room string, maxMsg int) []struct {
	typ  websocket.MessageType
	data []byte
} {
	over := []byte(`{"id":"viewer","sdpOffer":"` + strings.Repeat("x", maxMsg+1024) + `"}`)
	frames := []struct {
		typ  websocket.MessageType
		data []byte
	}{
		{websocket.MessageText, []byte(`{"id":"presenter","roomId":`)},
		{websocket.MessageBinary, bytes.Repeat([]byte{0xff, 0x00, 0x7b}, 300)},
		{websocket.MessageText, []byte(`{"id":"dance"}`)},
		{websocket.MessageText, []byte(`{"id":"presenter","roomId":"` + room + `","email":"` + room + `","sdpOffer":"v=0 garbage"}`)},
		{websocket.MessageText, []byte(`{"id":"onIceCandidate","roomId":"` + room + `","candidate":{"candidate":"candidate:x"}}`)},
		{websocket.MessageText, []byte(`[1,2,3]`)},
		{websocket.MessageText, []byte(`{"id":"viewer","roomId":"` + room + `","email":"mallory","sdpOffer":null}`)},
	}
	for i := 0; i < 13; i++ { // one frame in twenty is over the cap
		frames = append(frames, frames[i%7])
	}
	// The frame over the cap comes first, so that it is read within the
	// socket's first burst, before the message rate refuses anything.
	return append([]struct {
		typ  websocket.MessageType
		data []byte
	}{{websocket.MessageText, over}}, frames...)
}

// floodSocket opens WebSockets one after the other and floods each until
// the server closes it (1008 once it keeps over its message rate), conns
// times; it reads and drops what the server sends.
func floodSocket(srv *testpeer.Server, room string, conns int, sent *atomic.Int64) {
	frames := floodFrames(room, int(srv.Config.MaxMessageBytes))
	for c := 0; c < conns; c++ {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		conn, _, err := websocket.Dial(ctx, srv.WSURL, nil)
		if err != nil {
			cancel()
			continue
		}
		conn.SetReadLimit(1 << 20)
		read := make(chan struct{})
		go func() {
			defer close(read)
			for {
				if _, _, err := conn.Read(ctx); err != nil {
					return
				}
			}
		}()
	flood:
		for i := 0; ; i++ {
			f := frames[i%len(frames)]
			if err := conn.Write(ctx, f.typ, f.data); err != nil {
				break
			}
			sent.Add(1)
			select {
			case <-read: // closed by the server
				break flood
			default:
			}
		}
		conn.CloseNow()
		<-read
		cancel()
	}
}

// floodBodies posts bodies far over the size cap, and malformed ones, to
// the REST API and WHIP, n times.
func floodBodies(srv *testpeer.Server, n int, sent *atomic.Int64) {
	origin := strings.TrimSuffix(srv.URL, srv.Config.BasePath)
	c := &http.Client{Transport: &http.Transport{}, Timeout: timeout}
	defer c.CloseIdleConnections()
	big := bytes.Repeat([]byte("{"), int(srv.Config.MaxMessageBytes)*3)
	posts := []struct{ url, ct string }{
		{srv.URL + "/room/live", "application/json"},
		{srv.URL + "/room/view", "application/json"},
		{origin + "/whip/flood", "application/sdp"},
		{origin + "/whep/flood", "application/sdp"},
	}
	for i := 0; i < n; i++ {
		p := posts[i%len(posts)]
		body := big
		if i%3 == 2 {
			body = []byte(`{"roomId":`) // malformed, small
		}
		req, err := http.NewRequest(http.MethodPost, p.url, bytes.NewReader(body))
		if err != nil {
			continue
		}
		req.Header.Set("Content-Type", p.ct)
		req.Header.Set("email", fmt.Sprintf("flood%d@example.com", i))
		resp, err := c.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		sent.Add(1)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// A flood of malformed frames, oversized frames and oversized bodies from
// 50 WebSockets and 10 HTTP clients at once leaves a running broadcast
// intact: media keeps flowing to its viewer throughout, the server answers
// health checks, the heap stays bounded, and once the flood is over nothing
// of it is left (the server's end of the test checks rooms, endpoints,
// WebSockets and goroutines back to zero).
func TestFloodLeavesBroadcastIntact(t *testing.T) {
	const (
		sockets      = 50
		connsEach    = 1
		httpClients  = 10
		postsEach    = 20
		heapMaxGrown = 256 << 20 // generous: the race detector's shadow memory, GC timing
	)
	// The default limits, but for the message rate: a flooder on a busy
	// machine under the race detector may send fewer than the default 50
	// messages a second per socket, and this test is about what happens to
	// a socket that floods, whatever the machine's speed.
	srv := testpeer.StartServer(t, func(c *config.Config) { c.MaxMessagesPerSecond = 2 })
	const room = "ann@example.com"
	testpeer.MustPresenter(t, srv, "ann@example.com", room, testpeer.PresenterOptions{})
	v := testpeer.MustViewer(t, srv, "vic@example.com", room, testpeer.ViewerOptions{})
	wantMedia(t, v, 30)
	before := heapInUse()

	var frames, posts atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < sockets; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); floodSocket(srv, room, connsEach, &frames) }()
	}
	for i := 0; i < httpClients; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); floodBodies(srv, postsEach, &posts) }()
	}
	flooding := make(chan struct{})
	go func() { wg.Wait(); close(flooding) }()

	// While it lasts (at least once): the viewer gets media, health is UP.
	start := time.Now()
	var peak uint64
	for checks := 0; ; checks++ {
		select {
		case <-flooding:
			if checks > 0 {
				goto done
			}
		default:
		}
		wantMoreMedia(t, v, 10)
		wantStatus(t, srv.REST.Do(http.MethodGet, "/healthcheck/_check", "", nil), http.StatusOK)
		if h := heapInUse(); h > peak {
			peak = h
		}
	}
done:
	t.Logf("flood: %d frames on %d WebSockets, %d bad POSTs, in %s; heap in use %d MiB before, peak %d MiB",
		frames.Load(), sockets*connsEach, posts.Load(), time.Since(start).Round(time.Millisecond), before>>20, peak>>20)
	if peak > before+heapMaxGrown {
		t.Errorf("heap in use grew from %d MiB to %d MiB during the flood", before>>20, peak>>20)
	}

	// After it: the broadcast is as it was, and the flood's sockets are gone.
	wantMoreMedia(t, v, 30)
	if err := v.Peer.Check(); err != nil {
		t.Error(err)
	}
	if !testpeer.Eventually(timeout, func() bool { return srv.App.WebSockets() == 2 }) {
		t.Errorf("%d WebSockets open after the flood, want 2 (presenter and viewer)", srv.App.WebSockets())
	}
	srv.WaitCounts(t, timeout, live.Counts{Rooms: 1, Viewers: 1, Sessions: 2, Pipelines: 1, Endpoints: 2})
	waitRoomCount(t, srv, room, "1")
	if after := heapInUse(); after > before+64<<20 {
		t.Errorf("heap in use %d MiB after the flood, %d MiB before", after>>20, before>>20)
	}
	wantRejections(t, srv, map[string]float64{"message_rate": 1, "message_too_large": 1, "bad_message": 1, "body_too_large": 1})
	closed := strings.Count(srv.Log(), "WebSocket flooding, closing")
	t.Logf("%d flooding WebSockets closed by the server", closed)
	if closed == 0 {
		t.Error("no flooding WebSocket was closed by the server")
	}
}
