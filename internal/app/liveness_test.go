package app_test

import (
	"net"
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

// freezer is a TCP relay to the server that can go silent in both
// directions without closing anything: a client whose network vanished
// (no FIN, no RST), as a phone that lost its signal.
type freezer struct {
	l      net.Listener
	frozen atomic.Bool
	closed atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newFreezer(t *testing.T, target string) *freezer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{l: l}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			f.mu.Lock()
			f.conns = append(f.conns, c, s)
			f.mu.Unlock()
			f.wg.Add(2)
			go f.pipe(c, s)
			go f.pipe(s, c)
		}
	}()
	t.Cleanup(f.close)
	return f
}

func (f *freezer) pipe(dst, src net.Conn) {
	defer f.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for f.frozen.Load() && !f.closed.Load() {
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil || f.closed.Load() {
			dst.Close()
			return
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			src.Close()
			return
		}
	}
}

func (f *freezer) close() {
	f.closed.Store(true)
	f.l.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// A viewer whose WebSocket goes silent (no pong, no message) while its
// media still flows is closed after -ws-idle-timeout and its seat ended as
// a drop; the presenter, who answers pings, stays.
func TestSilentSocketClosedAsDropped(t *testing.T) {
	srv := testpeer.StartServer(t, func(c *config.Config) {
		c.WSPingInterval, c.WSIdleTimeout = 500*time.Millisecond, 3*time.Second
	})
	const room = "ann@example.com"
	p := testpeer.MustPresenter(t, srv, room, room, testpeer.PresenterOptions{})
	f := newFreezer(t, hostOf(srv))
	wantStatus(t, srv.REST.Join("vic@example.com", room), 201)
	ws, err := testpeer.DialWS(within(t), "ws://"+f.l.Addr().String()+srv.Config.BasePath+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	v, err := srv.WatchOn(within(t), ws, "vic@example.com", room, testpeer.ViewerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Drop)
	wantMedia(t, v, 10)
	time.Sleep(2 * srv.Config.WSIdleTimeout) // pings answered: both stay
	waitRoomCount(t, srv, room, "1")

	f.frozen.Store(true)
	waitRoomCount(t, srv, room, "0")
	srv.WaitCounts(t, timeout, live.Counts{Rooms: 1, Sessions: 1, Pipelines: 1, Endpoints: 1})
	if !strings.Contains(srv.Log(), "WebSocket silent, closing it as dropped") {
		t.Error("no log line of the silent WebSocket")
	}
	select {
	case <-p.WS.Done():
		t.Error("the presenter's WebSocket, which answers pings, was closed")
	default:
	}
	wantRejections(t, srv, map[string]float64{"ws_silent": 1})
}

// A WebSocket that sends no offer within -ws-bind-timeout is told why and
// closed with 1008; one that offered in time stays.
func TestUnboundSocketClosed(t *testing.T) {
	srv := testpeer.StartServer(t, func(c *config.Config) { c.WSBindTimeout = 2 * time.Second })
	const room = "ann@example.com"
	p := testpeer.MustPresenter(t, srv, room, room, testpeer.PresenterOptions{})
	idle := testpeer.MustWS(t, srv)
	if err := idle.WaitClosed(timeout); err != nil {
		t.Fatal(err)
	}
	if got := idle.CloseStatus(); got != websocket.StatusPolicyViolation {
		t.Errorf("an unbound WebSocket was closed with %v, want 1008", got)
	}
	if m := idle.Received(testpeer.IDError); len(m) == 0 || !strings.Contains(m[0].Message, "no offer within 2s") {
		t.Errorf("an unbound WebSocket was told %+v, want why", m)
	}
	select {
	case <-p.WS.Done():
		t.Error("the presenter's WebSocket, bound in time, was closed")
	default:
	}
	waitRoomCount(t, srv, room, "0")
	wantRejections(t, srv, map[string]float64{"ws_unbound": 1})
}

// A text message that is not UTF-8 fails the connection with 1007
// (RFC 6455, 8.1), and is counted as a bad message.
func TestInvalidUTF8Closes1007(t *testing.T) {
	srv := testpeer.StartServer(t, nil)
	ws := testpeer.MustWS(t, srv)
	if err := ws.SendText("{\"id\":\"viewer\",\"roomId\":\"\xff\xfe\"}"); err != nil {
		t.Fatal(err)
	}
	if err := ws.WaitClosed(timeout); err != nil {
		t.Fatal(err)
	}
	if got := ws.CloseStatus(); got != websocket.StatusInvalidFramePayloadData {
		t.Errorf("invalid UTF-8 closed the WebSocket with %v, want 1007", got)
	}
	wantRejections(t, srv, map[string]float64{"bad_message": 1})
}
