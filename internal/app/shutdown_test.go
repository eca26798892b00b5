package app_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/testpeer"
)

// Shutting the server down during a broadcast tells every viewer that it
// stopped, then closes every WebSocket ("going away"), and leaves nothing.
func TestGracefulShutdown(t *testing.T) {
	srv := testpeer.StartServer(t, nil)
	const ann = "ann@example.com"
	p, vs := broadcast(t, srv, ann, "v1@example.com", "v2@example.com", "v3@example.com")
	idle := testpeer.MustWS(t, srv) // a client that has not offered yet

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.App.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, v := range vs {
		if err := v.WS.WaitClosed(timeout); err != nil {
			t.Fatalf("%s: %v", v.Email, err)
		}
		// The message came before the close.
		stops := v.WS.Received(testpeer.IDStop)
		if len(stops) != 1 || stops[0].Message != "Presenter stopped streaming." {
			t.Errorf("%s received %+v before the close, want one stopCommunication", v.Email, stops)
		}
		if got := v.WS.CloseStatus(); got != websocket.StatusGoingAway {
			t.Errorf("%s: close status %v, want %v", v.Email, got, websocket.StatusGoingAway)
		}
		waitMediaEnded(t, v.Email, v.Peer.WaitEnded)
		if err := v.Peer.Check(); err != nil {
			t.Error(err)
		}
	}
	for who, ws := range map[string]*testpeer.WS{"presenter": p.WS, "idle client": idle} {
		if err := ws.WaitClosed(timeout); err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		if got := ws.CloseStatus(); got != websocket.StatusGoingAway {
			t.Errorf("%s: close status %v, want %v", who, got, websocket.StatusGoingAway)
		}
	}
	if c := srv.Counts(); c != (live.Counts{}) {
		t.Errorf("counts after shutdown %+v, want zero", c)
	}
	if n := srv.App.WebSockets(); n != 0 {
		t.Errorf("%d WebSockets after shutdown", n)
	}
	// New clients are turned away.
	if r := srv.REST.Do(http.MethodGet, "/room/list", "", nil); r.Err == nil {
		t.Errorf("after shutdown: %s, want a connection error", r)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	if ws, err := testpeer.DialWS(dctx, srv.WSURL); err == nil {
		ws.Drop()
		t.Error("a WebSocket opened after shutdown")
	}
}
