package live

import (
	"context"
	"errors"
	"strings"

	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/media"
	"github.com/onair-live/onair/internal/store"
)

// Offer is a client's SDP offer for a room, sent on a signalling session.
type Offer struct {
	RoomID string
	Email  string
	SDP    string
	// Gathered asks for an answer that carries every server candidate, for
	// clients that do not trickle (WHIP and WHEP).
	Gathered bool
	// Layer pins a viewer's simulcast layer from the start (h, m, l; "" or
	// auto: chosen by its bandwidth). See SetLayer.
	Layer string
}

// Present negotiates the presenter's offer and binds the session to it.
// who must be the offer's user, with the publish grant on its room. A
// returned error's text is the rejection the client is shown.
func (s *Service) Present(ctx context.Context, sess Session, who auth.Principal, o Offer) (string, error) {
	return s.offer(ctx, sess, who, o, store.RolePresenter)
}

// View negotiates a viewer's offer and binds the session to it. who must be
// the offer's user, with the view grant on its room.
func (s *Service) View(ctx context.Context, sess Session, who auth.Principal, o Offer) (string, error) {
	return s.offer(ctx, sess, who, o, store.RoleViewer)
}

func (s *Service) offer(ctx context.Context, sess Session, who auth.Principal, o Offer, role store.Role) (string, error) {
	if strings.TrimSpace(o.RoomID) == "" || strings.TrimSpace(o.Email) == "" || strings.TrimSpace(o.SDP) == "" {
		return "", ErrMissingField
	}
	if err := s.mayOffer(who, o, role); err != nil {
		return "", err
	}
	if err := media.CheckLayer(o.Layer); err != nil {
		return "", ErrBadRequest.With("%v", err)
	}
	r := s.room(o.RoomID)
	if role == store.RoleViewer && s.clustered() {
		var err error
		if r, err = s.adopt(ctx, o); err != nil { // cluster.go
			return "", err
		}
	}
	if r == nil {
		return "", ErrRoomNotFound
	}
	r.mu.Lock()
	if r.ended || r.presenter == nil {
		r.mu.Unlock()
		return "", ErrRoomNotFound
	}
	var m *member
	if role == store.RolePresenter {
		m = r.presenter
		if m.email != o.Email {
			r.mu.Unlock()
			return "", ErrNotPresenter
		}
		if m.offered {
			r.mu.Unlock()
			return "", ErrAlreadySender
		}
	} else {
		m = r.viewers[o.Email]
		if m == nil {
			r.mu.Unlock()
			return "", ErrNotViewer
		}
		if m.offered {
			r.mu.Unlock()
			return "", ErrAlreadyViewer
		}
	}
	if err := s.bind(sess, m); err != nil {
		r.mu.Unlock()
		return "", err
	}
	m.offered = true
	m.stopOfferWait()
	r.mu.Unlock()

	if lp, ok := m.endpoint.(media.LayerPinner); ok && o.Layer != "" && role == store.RoleViewer {
		if err := lp.SetLayer(o.Layer); err != nil {
			s.log.Debug("layer not pinned", "room", o.RoomID, "err", err)
		}
	}
	process := m.endpoint.ProcessOffer
	if o.Gathered {
		process = m.endpoint.ProcessOfferGathered
	}
	answer, err := process(ctx, o.SDP)
	if err != nil {
		r.mu.Lock()
		m.offered = false
		if !r.ended {
			s.awaitOffer(r, m) // the client may offer again
		}
		r.mu.Unlock()
		s.log.Warn("offer rejected", "room", o.RoomID, "user", o.Email, "role", string(role),
			"session", Tag(sess.ID()), "err", err)
		return "", offerError(err)
	}
	if err := s.store.BindSession(ctx, o.Email, sess.ID()); err != nil && !isNotFound(err) {
		s.log.Warn("cannot record session", "user", o.Email, "err", err)
	}
	s.log.Info("offer accepted", "room", o.RoomID, "user", o.Email, "role", string(role), "session", Tag(sess.ID()))
	if role == store.RolePresenter {
		s.startRecording(r, m, sess)
	}
	return answer, nil
}

// offerError is the domain's failure for a media engine's refusal of an
// offer.
func offerError(err error) error {
	switch {
	case errors.Is(err, media.ErrReleased):
		return ErrRoomNotFound
	case errors.Is(err, media.ErrAlreadyNegotiated):
		return ErrAlreadySender
	}
	if e := mediaError(err); e != err {
		return e
	}
	return ErrNoConnect.Wrap(err)
}

// mediaError translates the media engine's refusals that the client can
// act on (a bad offer, media not ready yet) into the domain's; it returns
// any other error as it is.
func mediaError(err error) error {
	switch {
	case errors.Is(err, media.ErrBadOffer), errors.Is(err, media.ErrIncompatible):
		return ErrBadOffer.Wrap(err)
	case errors.Is(err, media.ErrNotReady):
		return ErrNotReady.Wrap(err)
	}
	return err
}

// AddCandidate gives a client's ICE candidate to the endpoint of the session
// that sent it, whichever role it has.
func (s *Service) AddCandidate(sessionID string, c media.Candidate) error {
	s.mu.Lock()
	m := s.sessions[sessionID]
	s.mu.Unlock()
	if m == nil {
		return ErrNoSession.With("this session has sent no offer")
	}
	if err := s.candidatesLeft(m); err != nil {
		return err
	}
	if err := m.endpoint.AddCandidate(c); err != nil {
		if errors.Is(err, media.ErrReleased) {
			return ErrNoSession.With("this session has ended")
		}
		return ErrBadRequest.With("%v", err)
	}
	return nil
}

// SessionClosed handles a signalling session that went away: if its user is
// still in a room, that is an abnormal exit (app killed, network lost).
func (s *Service) SessionClosed(sessionID string) {
	s.mu.Lock()
	m := s.sessions[sessionID]
	delete(s.sessions, sessionID)
	s.mu.Unlock()
	if m == nil {
		return
	}
	r := s.room(m.roomID)
	if r == nil {
		return
	}
	ctx := context.Background()
	if m.role == store.RolePresenter {
		s.log.Warn("presenter's WebSocket closed, ending broadcast", "room", m.roomID,
			"presenter", m.email, "session", Tag(sessionID))
		s.teardown(ctx, r, ReasonDropped, "presenter WebSocket closed", StopEnded)
		return
	}
	s.removeViewer(ctx, r, m.email, m.endpoint, ReasonDropped, "WebSocket closed", 0)
}

// Publish goes live and negotiates the presenter in one step (WHIP): the
// room is created, and removed again if the offer fails.
func (s *Service) Publish(ctx context.Context, sess Session, who auth.Principal, req StartRequest, offer string) (string, error) {
	if _, err := s.StartBroadcast(ctx, who, req); err != nil {
		return "", err
	}
	answer, err := s.Present(ctx, sess, who, Offer{RoomID: req.RoomID, Email: who.Subject, SDP: offer, Gathered: true})
	if err != nil {
		if r := s.room(req.RoomID); r != nil {
			s.teardown(ctx, r, ReasonFailed, "publish failed", StopEnded)
		}
		return "", err
	}
	return answer, nil
}

// Watch joins a room and negotiates the viewer in one step (WHEP): the
// viewer is removed again if the offer fails.
func (s *Service) Watch(ctx context.Context, sess Session, who auth.Principal, roomID, offer, layer string) (string, error) {
	if err := media.CheckLayer(layer); err != nil {
		return "", ErrBadRequest.With("%v", err)
	}
	if _, err := s.Join(ctx, who, roomID); err != nil {
		return "", err
	}
	answer, err := s.View(ctx, sess, who, Offer{RoomID: roomID, Email: who.Subject, SDP: offer, Gathered: true, Layer: layer})
	if err != nil {
		r := s.room(roomID)
		if (r == nil || !s.removeViewer(ctx, r, who.Subject, nil, ReasonFailed, "offer failed", 0)) && s.clustered() {
			s.dropSeat(ctx, roomID, who.Subject)
		}
		return "", err
	}
	return answer, nil
}

// SetLayer pins the simulcast layer of the viewer the session signals for
// ("h", "m", "l"), or with "auto" lets its bandwidth choose again. A
// broadcast without simulcast ignores it.
func (s *Service) SetLayer(sessionID, layer string) error {
	if err := media.CheckLayer(layer); err != nil {
		return ErrBadRequest.With("%v", err)
	}
	s.mu.Lock()
	m := s.sessions[sessionID]
	s.mu.Unlock()
	if m == nil {
		return ErrNoSession.With("this session has sent no offer")
	}
	if m.role != store.RoleViewer {
		return ErrBadRequest.With("only a viewer has a layer")
	}
	lp, ok := m.endpoint.(media.LayerPinner)
	if !ok {
		return nil
	}
	if err := lp.SetLayer(layer); err != nil {
		return ErrBadRequest.With("%v", err)
	}
	return nil
}

// RestartICE restarts ICE for the session's endpoint with the client's new
// credentials and returns the new local description.
func (s *Service) RestartICE(ctx context.Context, sessionID, ufrag, pwd string) (string, error) {
	if err := checkICECredentials(ufrag, pwd); err != nil {
		return "", err
	}
	s.mu.Lock()
	m := s.sessions[sessionID]
	s.mu.Unlock()
	if m == nil {
		return "", ErrNoSession.With("this session has ended")
	}
	sdp, err := m.endpoint.RestartICE(ctx, ufrag, pwd)
	if err != nil {
		return "", mediaError(err)
	}
	return sdp, nil
}
