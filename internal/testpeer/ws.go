package testpeer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
)

// Message is any message the server sends on the WebSocket.
type Message struct {
	ID        string                   `json:"id"`
	SessionID string                   `json:"session-id"`
	Response  string                   `json:"response"`
	SDPAnswer string                   `json:"sdpAnswer"`
	Message   string                   `json:"message"`
	Candidate *webrtc.ICECandidateInit `json:"candidate"`
	Raw       string                   `json:"-"`
}

// Message ids of the protocol.
const (
	IDOpen              = "open"
	IDPresenter         = "presenter"
	IDViewer            = "viewer"
	IDOnIceCandidate    = "onIceCandidate"
	IDIceCandidate      = "iceCandidate"
	IDPresenterResponse = "presenterResponse"
	IDViewerResponse    = "viewerResponse"
	IDStop              = "stopCommunication"
	IDError             = "error"
)

// WS is a client of the signalling WebSocket. A reader goroutine collects
// every message; Next takes them in order, by id. Its methods are safe for
// concurrent use.
type WS struct {
	conn      *websocket.Conn
	SessionID string // from the server's "open" message

	mu          sync.Mutex
	msgs        []Message
	taken       map[string]int // per id, how many of its messages Next returned
	changed     chan struct{}  // closed and replaced on each message and at the end
	onCandidate func(webrtc.ICECandidateInit)
	ended       bool
	readErr     error
	done        chan struct{} // the reader has ended
}

// DialWS opens the WebSocket and waits for the server's "open" message.
func DialWS(ctx context.Context, url string) (*WS, error) {
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	conn.SetReadLimit(1 << 20)
	w := &WS{conn: conn, taken: map[string]int{}, changed: make(chan struct{}), done: make(chan struct{})}
	go w.readLoop()
	open, err := w.Next(ctx, IDOpen)
	if err != nil {
		w.Drop()
		return nil, err
	}
	if open.SessionID == "" {
		w.Drop()
		return nil, fmt.Errorf("open message without a session-id: %s", open.Raw)
	}
	w.SessionID = open.SessionID
	return w, nil
}

func (w *WS) readLoop() {
	defer close(w.done)
	for {
		_, data, err := w.conn.Read(context.Background())
		if err != nil {
			w.mu.Lock()
			w.ended, w.readErr = true, err
			close(w.changed)
			w.mu.Unlock()
			return
		}
		m := Message{Raw: string(data)}
		if err := json.Unmarshal(data, &m); err != nil {
			m = Message{ID: "(not JSON)", Raw: string(data)}
		}
		w.mu.Lock()
		w.msgs = append(w.msgs, m)
		f := w.onCandidate
		close(w.changed)
		w.changed = make(chan struct{})
		w.mu.Unlock()
		if f != nil && m.ID == IDIceCandidate && m.Candidate != nil {
			f(*m.Candidate)
		}
	}
}

// OnCandidate calls f with each iceCandidate the server sends from now on
// (the server trickles only after an offer, so set it before offering). f
// runs on the reader goroutine and must not block.
func (w *WS) OnCandidate(f func(webrtc.ICECandidateInit)) {
	w.mu.Lock()
	w.onCandidate = f
	w.mu.Unlock()
}

// Next returns the next message with this id that Next has not returned yet,
// waiting for it until ctx ends or the connection closes.
func (w *WS) Next(ctx context.Context, id string) (Message, error) {
	for {
		w.mu.Lock()
		seen := 0
		for _, m := range w.msgs {
			if m.ID != id {
				continue
			}
			if seen == w.taken[id] {
				w.taken[id]++
				w.mu.Unlock()
				return m, nil
			}
			seen++
		}
		ended, readErr, changed := w.ended, w.readErr, w.changed
		w.mu.Unlock()
		if ended {
			return Message{}, fmt.Errorf("waiting for %q: WebSocket closed: %w", id, readErr)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Message{}, fmt.Errorf("waiting for %q: %w (received: %s)", id, ctx.Err(), w.summary())
		}
	}
}

// NextWithin is Next with a timeout.
func (w *WS) NextWithin(timeout time.Duration, id string) (Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return w.Next(ctx, id)
}

// Received returns every message received so far with this id.
func (w *WS) Received(id string) []Message {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Message
	for _, m := range w.msgs {
		if m.ID == id {
			out = append(out, m)
		}
	}
	return out
}

// summary lists the ids of the messages received, for error messages.
func (w *WS) summary() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	counts := map[string]int{}
	var order []string
	for _, m := range w.msgs {
		if counts[m.ID] == 0 {
			order = append(order, m.ID)
		}
		counts[m.ID]++
	}
	s := ""
	for _, id := range order {
		s += fmt.Sprintf("%s×%d ", id, counts[id])
	}
	return s
}

// Send sends v as a JSON text message.
func (w *WS) Send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return w.write(websocket.MessageText, b)
}

// SendText sends s as one text message, as is.
func (w *WS) SendText(s string) error { return w.write(websocket.MessageText, []byte(s)) }

// SendBinary sends b as one binary message.
func (w *WS) SendBinary(b []byte) error { return w.write(websocket.MessageBinary, b) }

func (w *WS) write(typ websocket.MessageType, b []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return w.conn.Write(ctx, typ, b)
}

// OfferMessage is the presenter's or viewer's offer.
type OfferMessage struct {
	ID       string `json:"id"`
	RoomID   string `json:"roomId"`
	Email    string `json:"email"`
	SDPOffer string `json:"sdpOffer"`
}

// CandidateMessage is the client's onIceCandidate.
type CandidateMessage struct {
	ID        string                   `json:"id"`
	RoomID    string                   `json:"roomId"`
	Candidate *webrtc.ICECandidateInit `json:"candidate"`
}

// SendCandidate sends one of the client's ICE candidates.
func (w *WS) SendCandidate(roomID string, c webrtc.ICECandidateInit) error {
	return w.Send(CandidateMessage{ID: IDOnIceCandidate, RoomID: roomID, Candidate: &c})
}

// Done is closed when the connection has closed and the reader has ended.
func (w *WS) Done() <-chan struct{} { return w.done }

// CloseStatus is the close code the server sent, or -1 if the connection
// is open or ended without one.
func (w *WS) CloseStatus() websocket.StatusCode {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.ended {
		return -1
	}
	return websocket.CloseStatus(w.readErr)
}

// WaitClosed waits for the server to close the connection.
func (w *WS) WaitClosed(timeout time.Duration) error {
	select {
	case <-w.done:
		return nil
	case <-time.After(timeout):
		return errors.New("the WebSocket is still open")
	}
}

// Close closes the connection cleanly (close handshake) and waits for the
// reader to end.
func (w *WS) Close() {
	_ = w.conn.Close(websocket.StatusNormalClosure, "")
	w.conn.CloseNow()
	<-w.done
}

// Drop closes the TCP connection without a close handshake, as a killed app
// or a lost network does, and waits for the reader to end.
func (w *WS) Drop() {
	_ = w.conn.CloseNow()
	<-w.done
}
