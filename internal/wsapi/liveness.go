package wsapi

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Liveness. A WebSocket whose client vanished without a FIN (a phone that
// lost its network) is otherwise found only through its media, or never
// if it has none. So every connection is pinged each PingInterval, and one
// that has sent neither a pong nor a message for IdleTimeout is closed and
// handled as a drop (its broadcast or seat ends with reason "dropped").
// A connection that has had no offer accepted within BindTimeout of
// opening holds a socket for nothing, and is closed too.

// Reasons of the closes made here, for Config.OnRejected.
const (
	RejectSilent  = "ws_silent"  // no pong and no message for IdleTimeout
	RejectUnbound = "ws_unbound" // no offer accepted within BindTimeout
)

// Defaults of the liveness settings.
const (
	defaultPingInterval = 20 * time.Second
	defaultIdleTimeout  = 45 * time.Second
	defaultBindTimeout  = 30 * time.Second
)

// heard is when a connection last showed it is alive: a message, a ping
// or a pong. It is made before the upgrade, whose options report pings and
// pongs to it.
type heard struct{ at atomic.Int64 }

func newHeard() *heard {
	h := &heard{}
	h.touch()
	return h
}

func (h *heard) touch() { h.at.Store(time.Now().UnixNano()) }

func (h *heard) idle() time.Duration { return time.Since(time.Unix(0, h.at.Load())) }

// watch reports pings and pongs from the client to h.
func (h *heard) watch(opts *websocket.AcceptOptions) {
	opts.OnPingReceived = func(context.Context, []byte) bool { h.touch(); return true }
	opts.OnPongReceived = func(context.Context, []byte) { h.touch() }
}

// startLiveness pings the connection and arms its bind timer and its
// token's expiry; the function returned stops them all and waits for the
// pinger to end.
func (s *session) startLiveness() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.keepAlive(ctx)
	}()
	bind := time.AfterFunc(s.srv.cfg.BindTimeout, s.bindTimedOut)
	s.mu.Lock()
	s.bindTimer = bind
	s.armExpiry() // tokens.go
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.bindTimer.Stop()
		if s.expiry != nil {
			s.expiry.Stop()
		}
		s.lifeOver = true
		s.mu.Unlock()
		cancel()
		<-done
	}
}

// keepAlive pings each PingInterval and closes the connection once it has
// been silent for IdleTimeout.
func (s *session) keepAlive(ctx context.Context) {
	t := time.NewTicker(s.srv.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for {
			idle := s.heard.idle()
			if idle >= s.srv.cfg.IdleTimeout {
				s.srv.rejected(RejectSilent)
				s.log.Info("WebSocket silent, closing it as dropped", "silentFor", idle.Round(time.Second))
				s.closeAfterFlush(websocket.StatusPolicyViolation, "no pong or message for "+s.srv.cfg.IdleTimeout.String())
				return
			}
			pctx, cancel := context.WithTimeout(ctx, s.srv.cfg.IdleTimeout-idle)
			err := s.conn.Ping(pctx)
			cancel()
			if err == nil {
				s.heard.touch()
				break // alive: wait for the next tick
			}
			if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
				return // closing anyway
			}
			// No pong in time: look again (a message may have come).
		}
	}
}

// bindTimedOut closes the connection if no offer of its was accepted in
// BindTimeout; one being answered now is given another BindTimeout.
func (s *session) bindTimedOut() {
	s.mu.Lock()
	bound, answering := s.room != "" || s.lifeOver, s.answering
	if !bound && answering {
		s.bindTimer.Reset(s.srv.cfg.BindTimeout)
	}
	s.mu.Unlock()
	if bound || answering {
		return
	}
	s.srv.rejected(RejectUnbound)
	s.log.Info("WebSocket sent no offer in time, closing", "wait", s.srv.cfg.BindTimeout)
	s.sendError("no offer within " + s.srv.cfg.BindTimeout.String() + ": closing")
	s.closeAfterFlush(websocket.StatusPolicyViolation, "no offer within "+s.srv.cfg.BindTimeout.String())
}
