package live

import "fmt"

// Kind is the sort of a domain failure. The domain says only what went
// wrong; each transport renders it in its own protocol (a status, an error
// name and code, a text).
type Kind int

const (
	KindBadRequest   Kind = iota + 1 // the request is malformed or incomplete
	KindNotFound                     // what it names does not exist (or no longer)
	KindConflict                     // it clashes with the state things are in
	KindInternal                     // the server failed
	KindUnavailable                  // the server cannot take it now
	KindUnauthorized                 // no valid credentials
	KindForbidden                    // valid credentials without the grant
	KindTooMany                      // a rate or a limit was exceeded: try again later
)

// Error is a domain failure: one of the sentinels below, or a copy of one
// made by With or Wrap (errors.Is matches the copy to its sentinel). Detail,
// when set, says what exactly went wrong; Err is the cause, if any.
type Error struct {
	Kind   Kind
	What   string // what the sentinel means, in the domain's words
	Detail string
	Err    error
	base   *Error // the sentinel a copy was made of; nil for a sentinel
}

func newError(k Kind, what string) *Error { return &Error{Kind: k, What: what} }

func (e *Error) Error() string {
	s := e.What
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Sentinel returns the sentinel e is, or is a copy of.
func (e *Error) Sentinel() *Error {
	if e.base != nil {
		return e.base
	}
	return e
}

// Is matches copies of the same sentinel, so errors.Is(err, ErrNoRoom) works
// on errors made with With or Wrap.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Sentinel() == e.Sentinel()
}

// With returns a copy of e carrying detail.
func (e *Error) With(format string, args ...any) *Error {
	c := *e
	c.base = e.Sentinel()
	c.Detail = fmt.Sprintf(format, args...)
	return &c
}

// Wrap returns a copy of e caused by err.
func (e *Error) Wrap(err error) *Error {
	c := *e
	c.base = e.Sentinel()
	c.Err = err
	return &c
}

// The domain's failures.
var (
	// The media engine.
	ErrNoPipeline = newError(KindInternal, "cannot create a media pipeline")
	ErrNoEndpoint = newError(KindInternal, "cannot create a media endpoint")
	ErrNoConnect  = newError(KindInternal, "cannot connect to the presenter's media")
	ErrBadOffer   = newError(KindBadRequest, "the SDP offer cannot be accepted") // the cause says why
	ErrNotReady   = newError(KindConflict, "the media is not ready yet")         // try again shortly

	// Rooms, users and sessions.
	ErrNoUser     = newError(KindNotFound, "no such user in a room")
	ErrNoRoom     = newError(KindNotFound, "no such room")
	ErrAlreadyIn  = newError(KindConflict, "already in a room")
	ErrAlreadyOut = newError(KindConflict, "already left")
	ErrNoSession  = newError(KindNotFound, "no such signalling session")

	// Offers on a signalling session.
	ErrMissingField  = newError(KindBadRequest, "the offer lacks its room, user or SDP")
	ErrRoomNotFound  = newError(KindNotFound, "the offer's room is not live")
	ErrNotPresenter  = newError(KindConflict, "another user presents this room")
	ErrAlreadySender = newError(KindConflict, "the presenter has offered already")
	ErrNotViewer     = newError(KindConflict, "the user has not joined this room")
	ErrAlreadyViewer = newError(KindConflict, "the viewer has offered already")
	ErrSessionBound  = newError(KindConflict, "the session signals for another user or room")
	ErrNotYou        = newError(KindForbidden, "the session is signed in as another user")

	// Anything else.
	ErrBadRequest  = newError(KindBadRequest, "the request is not valid")
	ErrUnavailable = newError(KindUnavailable, "the server cannot take this request now")
	ErrInternal    = newError(KindInternal, "the server failed")

	// Access and limits (access.go).
	ErrUnauthorized      = newError(KindUnauthorized, "a valid token is required")
	ErrForbidden         = newError(KindForbidden, "not allowed")
	ErrTooManyRequests   = newError(KindTooMany, "too many requests")
	ErrRoomFull          = newError(KindTooMany, "the room is full")
	ErrTooManyCandidates = newError(KindTooMany, "too many ICE candidates for one session")
	ErrTooManyRooms      = newError(KindUnavailable, "the server holds as many rooms as it may")
)
