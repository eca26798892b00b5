package testpeer

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// ConnectTimeout bounds how long the Must helpers wait for a client to be
// connected: generous, for a loaded machine under the race detector.
const ConnectTimeout = 30 * time.Second

// Presenter is a presenter as a client of the protocol behaves: it creates its
// room over REST, opens the WebSocket, offers its media and streams.
type Presenter struct {
	Email, RoomID string
	WS            *WS
	Peer          *Publisher
}

// PresenterOptions tune StartPresenter.
type PresenterOptions struct {
	Publisher PublisherOptions
	Negotiate NegotiateOptions
	// Token, if set, is sent on the REST calls and in the WebSocket's URL.
	Token string
}

// StartPresenter creates the room (POST /room/live), opens the WebSocket,
// negotiates the presenter's offer and waits for the media connection.
func (s *Server) StartPresenter(ctx context.Context, email, roomID string, o PresenterOptions) (*Presenter, error) {
	r := s.REST.WithToken(o.Token).CreateRoom(email, roomID, "title of "+roomID, "https://example.com/"+email+".png")
	if err := r.Want(http.StatusCreated); err != nil {
		return nil, err
	}
	ws, err := DialWS(ctx, s.WSURLWith(o.Token))
	if err != nil {
		return nil, err
	}
	return s.PresentOn(ctx, ws, email, roomID, o)
}

// PresentOn negotiates the presenter of a room already created, on an open
// WebSocket, and waits for the media connection. On error, the WebSocket is
// dropped.
func (s *Server) PresentOn(ctx context.Context, ws *WS, email, roomID string, o PresenterOptions) (*Presenter, error) {
	pub, err := NewPublisher(o.Publisher)
	if err != nil {
		ws.Drop()
		return nil, err
	}
	p := &Presenter{Email: email, RoomID: roomID, WS: ws, Peer: pub}
	if err := pub.negotiate(ctx, ws, IDPresenter, roomID, email, o.Negotiate); err != nil {
		p.Drop()
		return nil, fmt.Errorf("presenter %s: %w", email, err)
	}
	if err := pub.WaitConnected(ctx); err != nil {
		p.Drop()
		return nil, fmt.Errorf("presenter %s: %w", email, err)
	}
	return p, nil
}

// Close closes the media connection and the WebSocket (which, to the
// server, is the presenter going away).
func (p *Presenter) Close() {
	p.Peer.Close()
	p.WS.Close()
}

// Drop drops the WebSocket abruptly, then closes the media connection.
func (p *Presenter) Drop() {
	p.WS.Drop()
	p.Peer.Close()
}

// Viewer is a viewer as a client of the protocol behaves: it joins over REST,
// opens the WebSocket, offers to receive and watches.
type Viewer struct {
	Email, RoomID string
	WS            *WS
	Peer          *ViewerPeer
}

// ViewerOptions tune JoinViewer.
type ViewerOptions struct {
	Negotiate NegotiateOptions
	// Token, if set, is sent on the REST calls and in the WebSocket's URL.
	Token string
}

// JoinViewer joins the room (POST /room/view), opens the WebSocket,
// negotiates the viewer's offer and waits for the media connection.
func (s *Server) JoinViewer(ctx context.Context, email, roomID string, o ViewerOptions) (*Viewer, error) {
	r := s.REST.WithToken(o.Token).Join(email, roomID)
	if err := r.Want(http.StatusCreated); err != nil {
		return nil, err
	}
	ws, err := DialWS(ctx, s.WSURLWith(o.Token))
	if err != nil {
		return nil, err
	}
	return s.WatchOn(ctx, ws, email, roomID, o)
}

// WatchOn negotiates a viewer who has already joined, on an open WebSocket,
// and waits for the media connection. On error, the WebSocket is dropped.
func (s *Server) WatchOn(ctx context.Context, ws *WS, email, roomID string, o ViewerOptions) (*Viewer, error) {
	vp, err := NewViewerPeer()
	if err != nil {
		ws.Drop()
		return nil, err
	}
	v := &Viewer{Email: email, RoomID: roomID, WS: ws, Peer: vp}
	if err := vp.negotiate(ctx, ws, IDViewer, roomID, email, o.Negotiate); err != nil {
		v.Drop()
		return nil, fmt.Errorf("viewer %s: %w", email, err)
	}
	if err := vp.WaitConnected(ctx); err != nil {
		v.Drop()
		return nil, fmt.Errorf("viewer %s: %w", email, err)
	}
	return v, nil
}

// Close closes the WebSocket cleanly, then the media connection.
func (v *Viewer) Close() {
	v.WS.Close()
	v.Peer.Close()
}

// Drop drops the WebSocket abruptly, then closes the media connection.
func (v *Viewer) Drop() {
	v.WS.Drop()
	v.Peer.Close()
}

// MustPresenter is StartPresenter for the test goroutine: it fails the test
// on error and closes the presenter when the test ends.
func MustPresenter(t testing.TB, s *Server, email, roomID string, o PresenterOptions) *Presenter {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ConnectTimeout)
	defer cancel()
	p, err := s.StartPresenter(ctx, email, roomID, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// MustViewer is JoinViewer for the test goroutine: it fails the test on
// error and closes the viewer when the test ends.
func MustViewer(t testing.TB, s *Server, email, roomID string, o ViewerOptions) *Viewer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ConnectTimeout)
	defer cancel()
	v, err := s.JoinViewer(ctx, email, roomID, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// MustWS opens a WebSocket for the test goroutine and closes it when the
// test ends.
func MustWS(t testing.TB, s *Server) *WS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ConnectTimeout)
	defer cancel()
	ws, err := DialWS(ctx, s.WSURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ws.Close)
	return ws
}
