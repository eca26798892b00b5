package live

import (
	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/store"
)

// Access. The domain decides what a caller may do to rooms and users,
// because those are rules about rooms and users: publishing a room needs
// the publish grant on it, watching the view grant, only a room's presenter
// ends it (EndBroadcast acts on the caller's own room), and an offer is
// made for the caller's own user only. The transports decide who the
// caller is (a token, or the email header in trusted-header mode) and guard
// what is not the domain's (the admin API, request rates and sizes,
// origins). The domain also holds the limits that count its own objects:
// rooms per process, viewers per room, candidates per session.

// Limits bound what the domain holds; 0 means no limit.
type Limits struct {
	// MaxRooms: live rooms in this process.
	MaxRooms int
	// MaxViewersPerRoom: viewers of one room.
	MaxViewersPerRoom int
	// MaxCandidates: ICE candidates a client may give one session's
	// endpoint (trickled, early or restarted), in all.
	MaxCandidates int
}

// Reasons of refusals, for Options.OnRejected.
const (
	RejectForbidden         = "forbidden"           // a grant is missing
	RejectOtherUser         = "other_user"          // an offer for another user than the caller
	RejectRoomFull          = "room_full"           // Limits.MaxViewersPerRoom
	RejectTooManyRooms      = "too_many_rooms"      // Limits.MaxRooms
	RejectTooManyCandidates = "too_many_candidates" // Limits.MaxCandidates
)

func (s *Service) rejected(reason string) {
	if s.opts.OnRejected != nil {
		s.opts.OnRejected(reason)
	}
}

// forbidden refuses who an action, saying which (room may be empty).
func (s *Service) forbidden(who auth.Principal, room, action string) error {
	s.rejected(RejectForbidden)
	s.log.Info("forbidden", "user", who.Subject, "grants", who.Grants.String(), "tokenRoom", who.Room,
		"room", room, "action", action)
	if room == "" {
		return ErrForbidden.With("%s may not %s", who.Subject, action)
	}
	return ErrForbidden.With("%s may not %s room %s", who.Subject, action, room)
}

// mayPublish checks the publish grant on a room.
func (s *Service) mayPublish(who auth.Principal, roomID string) error {
	if who.CanPublish(roomID) {
		return nil
	}
	return s.forbidden(who, roomID, "publish")
}

// mayView checks the view grant on a room.
func (s *Service) mayView(who auth.Principal, roomID string) error {
	if who.CanView(roomID) {
		return nil
	}
	return s.forbidden(who, roomID, "watch")
}

// mayOffer checks that an offer is the caller's own, with the grant its
// role needs.
func (s *Service) mayOffer(who auth.Principal, o Offer, role store.Role) error {
	if o.Email != who.Subject {
		s.rejected(RejectOtherUser)
		s.log.Warn("offer for another user refused", "user", who.Subject, "offeredFor", o.Email, "room", o.RoomID)
		return ErrNotYou
	}
	if role == store.RolePresenter {
		return s.mayPublish(who, o.RoomID)
	}
	return s.mayView(who, o.RoomID)
}

// roomsLeft refuses a new room over Limits.MaxRooms. The caller holds s.mu.
func (s *Service) roomsLeft() error {
	if limit := s.opts.Limits.MaxRooms; limit > 0 && len(s.rooms) >= limit {
		s.rejected(RejectTooManyRooms)
		s.log.Warn("new room refused: too many rooms", "max", limit)
		return ErrTooManyRooms.With("this server holds at most %d rooms", limit)
	}
	return nil
}

// seatsLeft refuses a viewer over Limits.MaxViewersPerRoom. The caller
// holds r.mu.
func (s *Service) seatsLeft(r *room) error {
	if limit := s.opts.Limits.MaxViewersPerRoom; limit > 0 && len(r.viewers) >= limit {
		s.rejected(RejectRoomFull)
		s.log.Info("viewer refused: room full", "room", r.id, "max", limit)
		return ErrRoomFull.With("room %s has its %d viewers", r.id, limit)
	}
	return nil
}

// candidatesLeft counts one more candidate for m's endpoint, and refuses it
// over Limits.MaxCandidates.
func (s *Service) candidatesLeft(m *member) error {
	limit := s.opts.Limits.MaxCandidates
	if limit <= 0 {
		return nil
	}
	if n := m.candidates.Add(1); n > int64(limit) {
		s.rejected(RejectTooManyCandidates)
		if n == int64(limit)+1 {
			s.log.Warn("ICE candidates refused: too many", "room", m.roomID, "user", m.email, "max", limit)
		}
		return ErrTooManyCandidates.With("at most %d per session", limit)
	}
	return nil
}
