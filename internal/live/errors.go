package live

import (
	"errors"
	"fmt"
)

// Kind classifies an Error for the transports, which map it to a status.
type Kind int

const (
	KindBadRequest Kind = iota + 1
	KindConflict
	KindInternal
	KindUnavailable
	KindUnauthorized // no valid credentials
	KindForbidden    // valid credentials without the grant
	KindTooMany      // a rate or a limit was exceeded: try again later
)

// Error is a domain error with the protocol's name, code and message (the
// error table of docs/protocol.md). Detail, when set, says what exactly went wrong;
// it is logged and shown to the client after the protocol's message.
type Error struct {
	Name    string
	Code    int
	Message string
	Kind    Kind
	Detail  string
	Err     error // the cause, if any
}

func (e *Error) Error() string {
	s := e.Name + ": " + e.Message
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches errors of the same name, so errors.Is(err, ErrNoRoom) works on
// errors made with With or Wrap.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Name == e.Name
}

// With returns a copy of e carrying detail.
func (e *Error) With(format string, args ...any) *Error {
	c := *e
	c.Detail = fmt.Sprintf(format, args...)
	return &c
}

// Wrap returns a copy of e caused by err.
func (e *Error) Wrap(err error) *Error {
	c := *e
	c.Err = err
	return &c
}

// The protocol's errors (docs/protocol.md), and the few onair adds.
var (
	ErrNoPipeline      = &Error{Name: "KMS_NO_PIPELINE", Code: 5001, Message: "KMS can't create new media pipeline.", Kind: KindInternal}
	ErrNoEndpoint      = &Error{Name: "KMS_NO_ENDPOINT", Code: 5002, Message: "KMS can't create new webRtcEndpoint.", Kind: KindInternal}
	ErrReleaseEndpoint = &Error{Name: "KMS_RELEASE_ENDPOINT", Code: 5003, Message: "KMS can't release webRtcEndpoint.", Kind: KindInternal}
	ErrReleasePipeline = &Error{Name: "KMS_RELEASE_PIPELINE", Code: 5004, Message: "KMS can't release media pipeline.", Kind: KindInternal}
	ErrNoConnect       = &Error{Name: "KMS_NO_CONNECT", Code: 5007, Message: "KMS can't connect to presenter endpoint.", Kind: KindInternal}
	ErrNoUser          = &Error{Name: "NO_USER", Code: 5101, Message: "User not exists.", Kind: KindBadRequest}
	ErrNoRoom          = &Error{Name: "NO_ROOM", Code: 5102, Message: "ROOM not exists.", Kind: KindBadRequest}
	ErrAlreadyIn       = &Error{Name: "ALREADY_IN", Code: 5103, Message: "You already in streaming.", Kind: KindConflict}
	ErrAlreadyOut      = &Error{Name: "ALREADY_OUT", Code: 5104, Message: "You already left streaming.", Kind: KindConflict}
	ErrNoSession       = &Error{Name: "NO_SESSION", Code: 5105, Message: "WebSocket Session Id not exists.", Kind: KindBadRequest}

	// Added by onair.
	ErrBadRequest  = &Error{Name: "BAD_REQUEST", Code: 4000, Message: "The request is not valid.", Kind: KindBadRequest}
	ErrUnavailable = &Error{Name: "UNAVAILABLE", Code: 5030, Message: "The server cannot take this request now.", Kind: KindUnavailable}
	ErrInternal    = &Error{Name: "INTERNAL", Code: 5000, Message: "Internal Server Error.", Kind: KindInternal}

	// Access and limits (access.go; UNAUTHORIZED and TOO_MANY_REQUESTS are
	// the transports').
	ErrUnauthorized      = &Error{Name: "UNAUTHORIZED", Code: 4010, Message: "A valid token is required.", Kind: KindUnauthorized}
	ErrForbidden         = &Error{Name: "FORBIDDEN", Code: 4030, Message: "You are not allowed to do this.", Kind: KindForbidden}
	ErrTooManyRequests   = &Error{Name: "TOO_MANY_REQUESTS", Code: 4290, Message: "Too many requests: slow down.", Kind: KindTooMany}
	ErrRoomFull          = &Error{Name: "ROOM_FULL", Code: 4291, Message: "The room is full.", Kind: KindTooMany}
	ErrTooManyCandidates = &Error{Name: "TOO_MANY_CANDIDATES", Code: 4292, Message: "Too many ICE candidates for one session.", Kind: KindTooMany}
	ErrTooManyRooms      = &Error{Name: "TOO_MANY_ROOMS", Code: 5031, Message: "The server has as many rooms as it may hold.", Kind: KindUnavailable}
)

// Rejections of a WebSocket offer. Their text is what the client is shown in
// a presenterResponse or viewerResponse with response "rejected".
var (
	ErrAlreadySender = errors.New("You are already acting as sender.")
	ErrRoomNotFound  = errors.New("Can't find room you requested. Room doesn't exist!")
	ErrNotPresenter  = errors.New("Another user is the presenter of this room.")
	ErrNotViewer     = errors.New("You have not joined this room: call POST /room/view first.")
	ErrAlreadyViewer = errors.New("You are already receiving this broadcast.")
	ErrSessionBound  = errors.New("This WebSocket already signals for another user or room.")
	ErrMissingField  = errors.New("The message lacks roomId, email or sdpOffer.")
	ErrNotYou        = errors.New("This connection is signed in as another user.")
)
