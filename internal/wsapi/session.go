package wsapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/onair-live/onair/internal/apierr"
	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/media"
)

const outboxLength = 256

// session is one WebSocket connection. Its reader runs the client's messages
// in order; its writer sends from a bounded outbox, so the domain never waits
// on a slow client.
type session struct {
	srv    *Server
	conn   *websocket.Conn
	id     string
	remote string
	log    *slog.Logger

	out       chan []byte
	done      chan struct{} // the connection is finished
	closeCh   chan struct{} // close after flushing the outbox
	closeOnce sync.Once
	closeCode websocket.StatusCode
	closeWhy  string

	// Access (access.go). who is the token's principal when authed.
	who      auth.Principal
	authed   bool
	rate     *rate.Limiter // nil: no limit
	refusals *rate.Limiter // messages refused by rate (admit)
	over     int           // messages refused in a row (reader only)

	mu         sync.Mutex
	answering  bool                 // an offer is being answered: the server's candidates wait for the answer
	buffered   [][]byte             // the server's candidates that wait
	early      media.CandidateQueue // the client's candidates sent before its offer
	user, room string               // what the connection signals for, once bound

	// Liveness (liveness.go).
	heard     *heard
	bindTimer *time.Timer // guarded by mu
	lifeOver  bool        // the connection is finished: timers stay stopped (mu)
	// Tokens (tokens.go): the connection's token, and its expiry (mu).
	token  string
	expiry *time.Timer
}

var _ live.Session = (*session)(nil)

func newSession(srv *Server, conn *websocket.Conn, id, remote string, who auth.Principal, h *heard) *session {
	s := &session{
		srv: srv, conn: conn, id: id, remote: remote, heard: h,
		log:     srv.log.With("session", live.Tag(id), "remote", remote),
		out:     make(chan []byte, outboxLength),
		done:    make(chan struct{}),
		closeCh: make(chan struct{}),
	}
	s.rate, s.refusals = newMessageLimits(srv.cfg.MessagesPerSecond)
	if !srv.cfg.Auth.Open() {
		s.who, s.authed, s.user = who, true, who.Subject
		s.log = s.log.With("user", who.Subject)
	}
	return s
}

func (s *session) ID() string { return s.id }

// run serves the connection until it closes, then reports the session closed
// to the domain (an abnormal exit if its user is still in a room).
func (s *session) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		s.writeLoop()
	}()
	s.log.Debug("WebSocket opened")
	s.send(mustJSON(openMsg{ID: idOpen, SessionID: s.id}))
	stopLiveness := s.startLiveness()
	s.readLoop(ctx)
	stopLiveness()
	s.srv.svc.SessionClosed(s.id)
	select {
	case <-s.closeCh: // a close was asked for: let the writer send it
		<-writerDone
	default:
	}
	close(s.done)
	<-writerDone
	s.conn.CloseNow()
}

func (s *session) readLoop(ctx context.Context) {
	soft := s.srv.cfg.MaxMessageBytes
	hard := max(4*soft, 1<<20)
	s.conn.SetReadLimit(hard)
	for {
		typ, r, err := s.conn.Reader(ctx)
		if err != nil {
			s.logClose(err)
			return
		}
		s.heard.touch()
		data, err := io.ReadAll(io.LimitReader(r, soft+1))
		if err != nil {
			s.logClose(err)
			return
		}
		if int64(len(data)) > soft {
			if _, err := io.Copy(io.Discard, r); err != nil {
				s.srv.rejected(RejectMessageTooLarge)
				s.log.Warn("WebSocket message over the hard limit, closing", "limit", hard, "err", err)
				return
			}
		}
		ok, open := s.admit()
		if !open {
			return
		}
		if !ok {
			continue
		}
		if int64(len(data)) > soft {
			s.srv.rejected(RejectMessageTooLarge)
			s.log.Warn("WebSocket message too large", "limit", soft)
			s.sendError(fmt.Sprintf("message larger than %d bytes refused", soft))
			continue
		}
		if typ != websocket.MessageText {
			s.srv.rejected(RejectBadMessage)
			s.sendError("binary messages are not supported: send JSON text")
			continue
		}
		if !utf8.Valid(data) {
			// RFC 6455, 8.1: a text frame that is not UTF-8 fails the connection with 1007.
			s.srv.rejected(RejectBadMessage)
			s.log.Warn("WebSocket text message is not UTF-8, closing")
			s.closeAfterFlush(websocket.StatusInvalidFramePayloadData, "text message is not valid UTF-8")
			return
		}
		s.handle(ctx, data)
	}
}

func (s *session) logClose(err error) {
	switch status := websocket.CloseStatus(err); {
	case status == websocket.StatusNormalClosure || status == websocket.StatusGoingAway:
		s.log.Debug("WebSocket closed by client", "status", status)
	case status != -1:
		s.log.Info("WebSocket closed", "status", status, "err", err)
	case errors.Is(err, context.Canceled), errors.Is(err, io.EOF):
		s.log.Debug("WebSocket ended", "err", err)
	default:
		s.log.Info("WebSocket lost", "err", err)
	}
}

// handle acts on one client message.
func (s *session) handle(ctx context.Context, data []byte) {
	m, err := decode(data)
	if err != nil {
		s.srv.rejected(RejectBadMessage)
		s.log.Warn("malformed WebSocket message", "err", err, "bytes", len(data))
		s.sendError("malformed JSON message: " + err.Error())
		return
	}
	switch m.ID {
	case idPresenter:
		s.offer(ctx, m, idPresenterResponse)
	case idViewer:
		s.offer(ctx, m, idViewerResponse)
	case idOnIceCandidate:
		s.candidate(m)
	case idToken:
		s.refreshToken(m.Token)
	case idSetLayer:
		s.setLayer(m)
	default:
		s.srv.rejected(RejectBadMessage)
		s.log.Warn("unknown WebSocket message", "messageId", m.ID)
		s.sendError(fmt.Sprintf("unknown message id %q", m.ID))
	}
}

// offer negotiates a presenter's or viewer's offer. The answer is sent before
// any of the server's candidates, then the candidates the client sent early.
func (s *session) offer(ctx context.Context, m inbound, respID string) {
	if err := s.recheckToken(); err != nil {
		s.send(mustJSON(responseMsg{ID: respID, Response: "rejected", Message: apierr.Text(err)}))
		return
	}
	if s.authed && m.Email == "" {
		m.Email = s.who.Subject // the token says who; clients may leave it out
	}
	if err := s.boundTo(m.Email, m.RoomID); err != nil {
		s.send(mustJSON(responseMsg{ID: respID, Response: "rejected", Message: apierr.Text(err)}))
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.srv.cfg.OfferTimeout)
	defer cancel()
	o := live.Offer{RoomID: m.RoomID, Email: m.Email, SDP: m.SDPOffer}
	if respID == idViewerResponse {
		o.Layer = m.Layer
	}
	who := s.principal(m.Email)
	s.bufferCandidates()
	defer s.flushCandidates()
	var (
		answer string
		err    error
	)
	if respID == idPresenterResponse {
		answer, err = s.srv.svc.Present(ctx, s, who, o)
	} else {
		answer, err = s.srv.svc.View(ctx, s, who, o)
	}
	if err != nil {
		s.send(mustJSON(responseMsg{ID: respID, Response: "rejected", Message: apierr.Text(err)}))
		return
	}
	s.bind(o.Email, o.RoomID)
	s.send(mustJSON(responseMsg{ID: respID, Response: "accepted", SDPAnswer: answer}))
	s.mu.Lock()
	early := s.early.Take()
	s.mu.Unlock()
	for _, c := range early {
		if err := s.srv.svc.AddCandidate(s.id, c); err != nil {
			s.log.Debug("early candidate refused", "err", err)
		}
	}
}

// setLayer pins the simulcast layer of this session's viewer, or returns it
// to automatic choice.
func (s *session) setLayer(m inbound) {
	if err := s.srv.svc.SetLayer(s.id, m.Layer); err != nil {
		s.send(mustJSON(responseMsg{ID: idSetLayerResponse, Response: "rejected", Message: apierr.Text(err)}))
		return
	}
	s.send(mustJSON(responseMsg{ID: idSetLayerResponse, Response: "accepted"}))
}

// candidate gives a client candidate to this session's endpoint, or keeps it
// until the session's offer if it has none yet.
func (s *session) candidate(m inbound) {
	if m.Candidate == nil {
		s.srv.rejected(RejectBadMessage)
		s.sendError("onIceCandidate without a candidate")
		return
	}
	if err := s.candidateBound(m.RoomID); err != nil {
		s.sendError("candidate refused: " + apierr.Text(err))
		return
	}
	err := s.srv.svc.AddCandidate(s.id, m.Candidate.media())
	if err == nil {
		return
	}
	if errors.Is(err, live.ErrNoSession) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.early.Push(m.Candidate.media()) {
			return
		}
	}
	s.log.Info("candidate refused", "err", err)
	s.sendError("candidate refused: " + apierr.Text(err))
}

// SendCandidate trickles one of the server's candidates to the client.
func (s *session) SendCandidate(c media.Candidate) {
	b := mustJSON(candidateMsg{ID: idIceCandidate, Candidate: candidateBodyOf(c)})
	s.mu.Lock()
	if s.answering {
		s.buffered = append(s.buffered, b)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.send(b)
}

// Stop tells the client that its broadcast stopped.
func (s *session) Stop(reason live.StopReason) {
	msg := "Presenter stopped streaming."
	if reason == live.StopError {
		msg = "Internal Server Error."
	}
	s.send(mustJSON(stopMsg{ID: idStop, Message: msg}))
}

func (s *session) sendError(text string) {
	s.send(mustJSON(errorMsg{ID: idError, Message: text}))
}

// bufferCandidates keeps the server's candidates from the client until
// flushCandidates: the answer must reach it first.
func (s *session) bufferCandidates() {
	s.mu.Lock()
	s.answering = true
	s.mu.Unlock()
}

// flushCandidates sends the candidates buffered during an offer.
func (s *session) flushCandidates() {
	s.mu.Lock()
	buffered := s.buffered
	s.buffered, s.answering = nil, false
	s.mu.Unlock()
	for _, b := range buffered {
		s.send(b)
	}
}

// send queues a message without waiting. A client whose outbox is full is
// not reading: it is disconnected rather than allowed to hold anyone up.
func (s *session) send(b []byte) {
	select {
	case <-s.done:
		return
	default:
	}
	select {
	case s.out <- b:
	default:
		s.log.Warn("WebSocket client too slow, disconnecting", "queued", len(s.out))
		s.conn.CloseNow()
	}
}

func (s *session) writeLoop() {
	for {
		select {
		case b := <-s.out:
			if !s.write(b) {
				return
			}
		case <-s.closeCh:
			if s.flush() {
				_ = s.conn.Close(s.closeCode, s.closeWhy)
			}
			return
		case <-s.done:
			return
		}
	}
}

// flush writes whatever is queued; false if the connection failed.
func (s *session) flush() bool {
	for {
		select {
		case b := <-s.out:
			if !s.write(b) {
				return false
			}
		default:
			return true
		}
	}
}

func (s *session) write(b []byte) bool {
	ctx, cancel := context.WithTimeout(context.Background(), s.srv.cfg.WriteTimeout)
	defer cancel()
	if err := s.conn.Write(ctx, websocket.MessageText, b); err != nil {
		s.log.Debug("WebSocket write failed", "err", err)
		s.conn.CloseNow()
		return false
	}
	return true
}

// closeAfterFlush sends what is queued, then closes the connection.
func (s *session) closeAfterFlush(code websocket.StatusCode, why string) {
	s.closeOnce.Do(func() {
		s.closeCode, s.closeWhy = code, why
		close(s.closeCh)
	})
}
