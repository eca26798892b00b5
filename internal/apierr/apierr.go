// Package apierr is how the transports render the domain's failures
// (live.Error): the error table of the REST + WebSocket protocol (each
// failure's name, code and message, docs/protocol.md), the texts a
// WebSocket offer's rejection shows, and the HTTP status of each kind of
// failure, which the REST API and WHIP/WHEP share. The domain knows none of
// this; this package decides nothing but words and numbers.
package apierr

import (
	"errors"
	"net/http"

	"github.com/onair-live/onair/internal/live"
)

// Entry is a failure as the REST + WebSocket protocol names it.
type Entry struct {
	Name    string
	Code    int
	Message string
	// Status is the REST API's HTTP status for it.
	Status int
}

// Status is the HTTP status of a kind of failure, where the REST API and
// WHIP/WHEP agree.
func Status(k live.Kind) int {
	switch k {
	case live.KindBadRequest:
		return http.StatusBadRequest
	case live.KindNotFound:
		return http.StatusNotFound
	case live.KindConflict:
		return http.StatusConflict
	case live.KindUnavailable:
		return http.StatusServiceUnavailable
	case live.KindUnauthorized:
		return http.StatusUnauthorized
	case live.KindForbidden:
		return http.StatusForbidden
	case live.KindTooMany:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

// Lookup returns the protocol's entry for err, and the domain failure err
// is. A failure the protocol has no name for (or an error that is not the
// domain's) is the protocol's INTERNAL, caused by err.
func Lookup(err error) (Entry, *live.Error) {
	var e *live.Error
	if errors.As(err, &e) {
		if en, ok := entry(e.Sentinel()); ok {
			return en, e
		}
	}
	e = live.ErrInternal.Wrap(err)
	en, _ := entry(live.ErrInternal)
	return en, e
}

// entry is the protocol's error table. The names KMS_* come from the media
// server the protocol was first written for; they are protocol, and stay.
func entry(s *live.Error) (Entry, bool) {
	e := func(name string, code int, message string) (Entry, bool) {
		return Entry{Name: name, Code: code, Message: message, Status: Status(s.Kind)}, true
	}
	switch s {
	case live.ErrNoPipeline:
		return e("KMS_NO_PIPELINE", 5001, "KMS can't create new media pipeline.")
	case live.ErrNoEndpoint:
		return e("KMS_NO_ENDPOINT", 5002, "KMS can't create new webRtcEndpoint.")
	case live.ErrNoConnect:
		return e("KMS_NO_CONNECT", 5007, "KMS can't connect to presenter endpoint.")
	case live.ErrNoUser:
		return Entry{Name: "NO_USER", Code: 5101, Message: "User not exists.", Status: http.StatusBadRequest}, true
	case live.ErrNoRoom:
		return Entry{Name: "NO_ROOM", Code: 5102, Message: "ROOM not exists.", Status: http.StatusBadRequest}, true
	case live.ErrAlreadyIn:
		return e("ALREADY_IN", 5103, "You already in streaming.")
	case live.ErrAlreadyOut:
		return e("ALREADY_OUT", 5104, "You already left streaming.")
	case live.ErrNoSession:
		return Entry{Name: "NO_SESSION", Code: 5105, Message: "WebSocket Session Id not exists.", Status: http.StatusBadRequest}, true
	case live.ErrBadRequest:
		return e("BAD_REQUEST", 4000, "The request is not valid.")
	case live.ErrUnavailable:
		return e("UNAVAILABLE", 5030, "The server cannot take this request now.")
	case live.ErrInternal:
		return e("INTERNAL", 5000, "Internal Server Error.")
	case live.ErrUnauthorized:
		return e("UNAUTHORIZED", 4010, "A valid token is required.")
	case live.ErrForbidden:
		return e("FORBIDDEN", 4030, "You are not allowed to do this.")
	case live.ErrTooManyRequests:
		return e("TOO_MANY_REQUESTS", 4290, "Too many requests: slow down.")
	case live.ErrRoomFull:
		return e("ROOM_FULL", 4291, "The room is full.")
	case live.ErrTooManyCandidates:
		return e("TOO_MANY_CANDIDATES", 4292, "Too many ICE candidates for one session.")
	case live.ErrTooManyRooms:
		return e("TOO_MANY_ROOMS", 5031, "The server has as many rooms as it may hold.")
	}
	return Entry{}, false
}

// rejection is the text a WebSocket client is shown when its offer is
// refused for one of these reasons (a presenterResponse or viewerResponse
// with response "rejected").
func rejection(s *live.Error) (string, bool) {
	switch s {
	case live.ErrAlreadySender:
		return "You are already acting as sender.", true
	case live.ErrRoomNotFound:
		return "Can't find room you requested. Room doesn't exist!", true
	case live.ErrNotPresenter:
		return "Another user is the presenter of this room.", true
	case live.ErrNotViewer:
		return "You have not joined this room: call POST /room/view first.", true
	case live.ErrAlreadyViewer:
		return "You are already receiving this broadcast.", true
	case live.ErrSessionBound:
		return "This WebSocket already signals for another user or room.", true
	case live.ErrMissingField:
		return "The message lacks roomId, email or sdpOffer.", true
	case live.ErrNotYou:
		return "This connection is signed in as another user.", true
	case live.ErrNoConnect:
		return "KMS can't connect to presenter endpoint.", true
	}
	return "", false
}

// Text is err in one line for a client: an offer's rejection on the
// WebSocket, or a WHIP/WHEP error body. A failure with a rejection text is
// that text; one the protocol names is "NAME: message (detail): cause"; a
// refusal of the media engine (a bad offer, media not ready) is the
// engine's own words; anything else is its error text.
func Text(err error) string {
	var e *live.Error
	if !errors.As(err, &e) {
		return err.Error()
	}
	s := e.Sentinel()
	if t, ok := rejection(s); ok {
		return t
	}
	if s == live.ErrBadOffer || s == live.ErrNotReady {
		if e.Err != nil {
			return e.Err.Error()
		}
		return e.Error()
	}
	en, ok := entry(s)
	if !ok {
		return e.Error()
	}
	t := en.Name + ": " + en.Message
	if e.Detail != "" {
		t += " (" + e.Detail + ")"
	}
	if e.Err != nil {
		t += ": " + e.Err.Error()
	}
	return t
}
