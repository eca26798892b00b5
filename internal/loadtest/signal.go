package loadtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
)

// client speaks to one onair: its REST API and WebSocket under the base
// path, and WHIP and WHEP at the root.
type client struct {
	root     *url.URL // scheme and host, no path
	basePath string
	http     *http.Client
	tokens   *tokens // nil: no tokens (tokens.go)
}

func newClient(rawURL, basePath string, insecure bool) (*client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http:// or https:// URL", rawURL)
	}
	basePath = "/" + strings.Trim(basePath, "/")
	if basePath == "/" {
		basePath = ""
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	if insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // -insecure: a self-signed test server
	}
	return &client{root: &url.URL{Scheme: u.Scheme, Host: u.Host}, basePath: basePath,
		http: &http.Client{Transport: tr}}, nil
}

func (c *client) close() { c.http.CloseIdleConnections() }

func (c *client) url(path string) string { return c.root.String() + path }

// wsURL is the WebSocket's URL for the user email, with its token if any.
func (c *client) wsURL(email string) string {
	u := *c.root
	u.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	u.Path = c.basePath + "/ws"
	if tok := c.tokens.of(email); tok != "" {
		u.RawQuery = "token=" + url.QueryEscape(tok)
	}
	return u.String()
}

// statusError is an HTTP answer other than the one expected.
type statusError struct {
	method, path string
	status       int
	body         string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.method, e.path, e.status, strings.TrimSpace(e.body))
}

// do sends one request of the user email (sent as the email header, and
// its token if any) and checks its status; it returns the response with its
// body read.
func (c *client) do(ctx context.Context, method, path, email, contentType string, body []byte, want int) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	if email != "" {
		req.Header.Set("email", email)
	}
	if tok := c.tokens.of(email); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != want {
		return nil, nil, &statusError{method: method, path: path, status: resp.StatusCode, body: string(b)}
	}
	return resp, b, nil
}

// startBroadcast is POST /room/live: it creates the room.
func (c *client) startBroadcast(ctx context.Context, email, roomID string) error {
	body, _ := json.Marshal(map[string]string{"roomId": roomID, "title": "onair loadtest", "profileUrl": "-"})
	_, _, err := c.do(ctx, http.MethodPost, c.basePath+"/room/live", email, "application/json", body, http.StatusCreated)
	return err
}

// endBroadcast is DELETE /room/live.
func (c *client) endBroadcast(ctx context.Context, email string) error {
	_, _, err := c.do(ctx, http.MethodDelete, c.basePath+"/room/live", email, "", nil, http.StatusNoContent)
	return err
}

// join is POST /room/view.
func (c *client) join(ctx context.Context, email, roomID string) error {
	body, _ := json.Marshal(map[string]string{"roomId": roomID})
	_, _, err := c.do(ctx, http.MethodPost, c.basePath+"/room/view", email, "application/json", body, http.StatusCreated)
	return err
}

// leave is DELETE /room/view.
func (c *client) leave(ctx context.Context, email string) error {
	_, _, err := c.do(ctx, http.MethodDelete, c.basePath+"/room/view", email, "", nil, http.StatusNoContent)
	return err
}

// postOffer is a WHIP or WHEP POST (kind "whip" or "whep"): it returns the
// answer and the session's resource path.
func (c *client) postOffer(ctx context.Context, kind, roomID, email, offer string) (answer, location string, err error) {
	path := "/" + kind + "/" + url.PathEscape(roomID) + "?email=" + url.QueryEscape(email)
	resp, body, err := c.do(ctx, http.MethodPost, path, email, "application/sdp", []byte(offer), http.StatusCreated)
	if err != nil {
		return "", "", err
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", "", fmt.Errorf("POST %s: 201 without a Location", path)
	}
	if l, err := url.Parse(loc); err == nil && l.IsAbs() {
		loc = l.RequestURI()
	}
	return string(body), loc, nil
}

// deleteResource ends a WHIP or WHEP session.
func (c *client) deleteResource(ctx context.Context, location, email string) error {
	_, _, err := c.do(ctx, http.MethodDelete, location, email, "", nil, http.StatusOK)
	return err
}

// wsMessage is any message of the signalling WebSocket, either way.
type wsMessage struct {
	ID        string                   `json:"id"`
	SessionID string                   `json:"session-id,omitempty"`
	RoomID    string                   `json:"roomId,omitempty"`
	Email     string                   `json:"email,omitempty"`
	SDPOffer  string                   `json:"sdpOffer,omitempty"`
	Response  string                   `json:"response,omitempty"`
	SDPAnswer string                   `json:"sdpAnswer,omitempty"`
	Message   string                   `json:"message,omitempty"`
	Candidate *webrtc.ICECandidateInit `json:"candidate,omitempty"`
}

// wsSession is one signalling WebSocket bound to one peer connection. Its
// reader applies the server's trickled candidates (queued until the answer
// is set), hands the offer's response to negotiate, and notices the end of
// the broadcast.
type wsSession struct {
	conn     *websocket.Conn
	pc       *webrtc.PeerConnection
	response chan wsMessage
	onStop   func(string)
	done     chan struct{}

	mu        sync.Mutex
	remoteSet bool
	pending   []webrtc.ICECandidateInit
	stopped   atomic.Bool
}

// dialWS opens the WebSocket and waits for the server's "open" message.
func dialWS(ctx context.Context, c *client, email string, pc *webrtc.PeerConnection, onStop func(string)) (*wsSession, error) {
	conn, _, err := websocket.Dial(ctx, c.wsURL(email), &websocket.DialOptions{HTTPClient: c.http})
	if err != nil {
		return nil, fmt.Errorf("WebSocket: %w", err)
	}
	conn.SetReadLimit(1 << 20)
	_, data, err := conn.Read(ctx)
	var open wsMessage
	if err == nil {
		err = json.Unmarshal(data, &open)
	}
	if err == nil && open.ID != "open" {
		err = fmt.Errorf("first message is %q, not open", open.ID)
	}
	if err != nil {
		conn.CloseNow()
		return nil, fmt.Errorf("WebSocket: %w", err)
	}
	s := &wsSession{conn: conn, pc: pc, response: make(chan wsMessage, 1), onStop: onStop, done: make(chan struct{})}
	go s.readLoop()
	return s, nil
}

func (s *wsSession) readLoop() {
	defer close(s.done)
	for {
		_, data, err := s.conn.Read(context.Background())
		if err != nil {
			return
		}
		var m wsMessage
		if json.Unmarshal(data, &m) != nil {
			continue
		}
		switch m.ID {
		case "presenterResponse", "viewerResponse":
			select {
			case s.response <- m:
			default:
			}
		case "iceCandidate":
			if m.Candidate != nil {
				s.addRemote(*m.Candidate)
			}
		case "stopCommunication":
			if !s.stopped.Swap(true) && s.onStop != nil {
				s.onStop(m.Message)
			}
		}
	}
}

func (s *wsSession) send(ctx context.Context, m wsMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return s.conn.Write(ctx, websocket.MessageText, b)
}

func (s *wsSession) addRemote(c webrtc.ICECandidateInit) {
	s.mu.Lock()
	if !s.remoteSet {
		s.pending = append(s.pending, c)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	_ = s.pc.AddICECandidate(c)
}

// negotiate sends the offer as offerID ("presenter" or "viewer") with the
// gathered local candidates trickled after it, as a browser does, and
// applies the answer.
func (s *wsSession) negotiate(ctx context.Context, offerID, roomID, email, offerSDP string, local []webrtc.ICECandidateInit) error {
	if err := s.send(ctx, wsMessage{ID: offerID, RoomID: roomID, Email: email, SDPOffer: offerSDP}); err != nil {
		return fmt.Errorf("send offer: %w", err)
	}
	for i := range local {
		if err := s.send(ctx, wsMessage{ID: "onIceCandidate", RoomID: roomID, Candidate: &local[i]}); err != nil {
			return fmt.Errorf("send candidate: %w", err)
		}
	}
	var resp wsMessage
	select {
	case resp = <-s.response:
	case <-s.done:
		return errors.New("WebSocket closed before the answer")
	case <-ctx.Done():
		return fmt.Errorf("waiting for %sResponse: %w", offerID, ctx.Err())
	}
	if resp.Response != "accepted" {
		return fmt.Errorf("offer rejected: %s", resp.Message)
	}
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: resp.SDPAnswer}); err != nil {
		return fmt.Errorf("set answer: %w", err)
	}
	s.mu.Lock()
	s.remoteSet = true
	pending := s.pending
	s.pending = nil
	s.mu.Unlock()
	for _, c := range pending {
		_ = s.pc.AddICECandidate(c)
	}
	return nil
}

// close closes the WebSocket and waits for its reader.
func (s *wsSession) close() {
	_ = s.conn.Close(websocket.StatusNormalClosure, "")
	<-s.done
}
