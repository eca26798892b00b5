// Package store keeps the state of rooms and users: what a broadcast is, who
// presents it and who watches it, and which onair process holds its media.
// The in-memory Store (memory.go) is the default; the Redis store (redis.go)
// shares the same records between onair processes and outlives them.
//
// It owns only records. It never touches media objects or connections: the
// domain (internal/live) holds those and keeps their ids here. Both stores
// pass the same tests (internal/store/storetest).
package store

import (
	"context"
	"errors"
	"time"
)

// Room is a live broadcast.
type Room struct {
	ID         string
	Title      string
	ProfileURL string
	Presenter  string // the presenter's identity (email)
	PipelineID string
	CreatedAt  time.Time
	Viewers    int    // current number of viewers
	Owner      string // the onair process that holds the room's media (see Heartbeat)
}

// Role is a user's part in a room.
type Role string

const (
	RolePresenter Role = "presenter"
	RoleViewer    Role = "viewer"
)

// User is one identity in one room.
type User struct {
	Email      string
	RoomID     string
	Role       Role
	EndpointID string
	SessionID  string // the WebSocket session bound to this user, if any
	// Node is the onair process that holds a viewer's media, when several
	// serve a room together (a cluster); empty means the room's Owner.
	Node string
}

// Errors.
var (
	ErrNotFound = errors.New("store: not found")
	ErrExists   = errors.New("store: already exists")
)

// Store is implemented by Memory and by Redis. Each method is atomic: a room
// and its presenter are created together, and a viewer's record, the room's
// viewer set and its count change together, even with several onair
// processes on one store.
type Store interface {
	// CreateRoom records a room and its presenter (as presenter of that
	// room); ErrExists if either exists. The count starts at zero.
	CreateRoom(ctx context.Context, r Room, presenter User) error
	Room(ctx context.Context, id string) (Room, error)
	// Rooms lists the rooms, oldest first (then by id).
	Rooms(ctx context.Context) ([]Room, error)
	// DeleteRoom removes a room, its presenter and its viewers, and returns
	// the viewers. With pipelineID set, it removes the room only if that is
	// its pipeline (ErrNotFound otherwise), so that a late cleanup never
	// removes a newer room of the same id.
	DeleteRoom(ctx context.Context, id, pipelineID string) ([]User, error)
	// RestoreRoom records again a room whose process still holds its media
	// after its records were lost (a Redis that restarted empty): the room,
	// its presenter and the given viewers. What is still recorded is kept; a
	// room recorded with another pipeline, or a presenter recorded in
	// another room, is ErrExists. It returns the viewers it could not
	// restore because they are recorded in another room.
	RestoreRoom(ctx context.Context, r Room, presenter User, viewers []User) (skipped []string, err error)
	// AddViewer records a viewer in a room and returns the room with its new count.
	AddViewer(ctx context.Context, roomID string, u User) (Room, error)
	// RemoveViewer removes a viewer from a room.
	RemoveViewer(ctx context.Context, roomID, email string) error
	User(ctx context.Context, email string) (User, error)
	Viewers(ctx context.Context, roomID string) ([]User, error)
	// BindSession records the WebSocket session a user signals on.
	BindSession(ctx context.Context, email, sessionID string) error
	// MoveViewer records that node now holds a viewer's media, with that
	// endpoint (a cluster: the viewer's offer reached another node than its
	// join); ErrNotFound if the viewer is not in roomID.
	MoveViewer(ctx context.Context, roomID, email, node, endpointID string) error

	// Heartbeat records that the process owner is alive for ttl, and reports
	// whether its previous heartbeat was still current (false on the first
	// one, or when it had expired or been lost with the rest of the store).
	Heartbeat(ctx context.Context, owner string, ttl time.Duration) (renewed bool, err error)
	// OwnerAlive reports whether owner's last heartbeat is still current.
	OwnerAlive(ctx context.Context, owner string) (bool, error)
	// Retire removes owner's heartbeat (a clean shutdown).
	Retire(ctx context.Context, owner string) error

	// Ping reports whether the store can be reached.
	Ping(ctx context.Context) error
	Close() error
}
