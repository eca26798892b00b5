package apierr

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/media"
)

// The REST API's bodies and statuses, as docs/protocol.md lists them.
func TestLookup(t *testing.T) {
	for _, c := range []struct {
		err    error
		name   string
		code   int
		status int
	}{
		{live.ErrNoRoom.With("no live room r"), "NO_ROOM", 5102, http.StatusBadRequest},
		{live.ErrNoUser, "NO_USER", 5101, http.StatusBadRequest},
		{live.ErrNoSession, "NO_SESSION", 5105, http.StatusBadRequest},
		{live.ErrAlreadyIn, "ALREADY_IN", 5103, http.StatusConflict},
		{live.ErrAlreadyOut, "ALREADY_OUT", 5104, http.StatusConflict},
		{live.ErrNoPipeline.Wrap(errors.New("x")), "KMS_NO_PIPELINE", 5001, http.StatusInternalServerError},
		{live.ErrNoEndpoint, "KMS_NO_ENDPOINT", 5002, http.StatusInternalServerError},
		{live.ErrBadRequest, "BAD_REQUEST", 4000, http.StatusBadRequest},
		{live.ErrUnavailable, "UNAVAILABLE", 5030, http.StatusServiceUnavailable},
		{live.ErrUnauthorized, "UNAUTHORIZED", 4010, http.StatusUnauthorized},
		{live.ErrForbidden, "FORBIDDEN", 4030, http.StatusForbidden},
		{live.ErrTooManyRequests, "TOO_MANY_REQUESTS", 4290, http.StatusTooManyRequests},
		{live.ErrRoomFull, "ROOM_FULL", 4291, http.StatusTooManyRequests},
		{live.ErrTooManyCandidates, "TOO_MANY_CANDIDATES", 4292, http.StatusTooManyRequests},
		{live.ErrTooManyRooms, "TOO_MANY_ROOMS", 5031, http.StatusServiceUnavailable},
		{errors.New("not the domain's"), "INTERNAL", 5000, http.StatusInternalServerError},
		{live.ErrNotViewer, "INTERNAL", 5000, http.StatusInternalServerError}, // a WebSocket rejection only
	} {
		en, e := Lookup(c.err)
		if en.Name != c.name || en.Code != c.code || en.Status != c.status || e == nil {
			t.Errorf("Lookup(%v) = %+v, want %s %d %d", c.err, en, c.name, c.code, c.status)
		}
	}
}

// The texts a WebSocket rejection and a WHIP/WHEP body show.
func TestText(t *testing.T) {
	bad := fmt.Errorf("sfu: no video: %w", media.ErrIncompatible)
	for _, c := range []struct {
		err  error
		want string
	}{
		{live.ErrNoRoom.With("no live room r"), "NO_ROOM: ROOM not exists. (no live room r)"},
		{live.ErrUnavailable.With("store down").Wrap(errors.New("dial")), "UNAVAILABLE: The server cannot take this request now. (store down): dial"},
		{live.ErrNotViewer, "You have not joined this room: call POST /room/view first."},
		{live.ErrNoConnect.Wrap(errors.New("ice")), "KMS can't connect to presenter endpoint."},
		{live.ErrBadOffer.Wrap(bad), bad.Error()},
		{errors.New("plain"), "plain"},
	} {
		if got := Text(c.err); got != c.want {
			t.Errorf("Text(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

// Every failure of the domain is rendered by name, by a rejection text, or
// as the media engine's words.
func TestEveryFailureRendered(t *testing.T) {
	for _, s := range []*live.Error{
		live.ErrNoPipeline, live.ErrNoEndpoint, live.ErrNoConnect, live.ErrNoUser, live.ErrNoRoom,
		live.ErrAlreadyIn, live.ErrAlreadyOut, live.ErrNoSession, live.ErrMissingField,
		live.ErrRoomNotFound, live.ErrNotPresenter, live.ErrAlreadySender, live.ErrNotViewer,
		live.ErrAlreadyViewer, live.ErrSessionBound, live.ErrNotYou, live.ErrBadRequest,
		live.ErrUnavailable, live.ErrInternal, live.ErrUnauthorized, live.ErrForbidden,
		live.ErrTooManyRequests, live.ErrRoomFull, live.ErrTooManyCandidates, live.ErrTooManyRooms,
	} {
		_, named := entry(s)
		_, rejection := rejection(s)
		if !named && !rejection {
			t.Errorf("%q has neither an entry nor a rejection text", s.What)
		}
	}
}
