// Package store keeps the state of rooms and users: what a broadcast is, who
// presents it and who watches it. The in-memory Store is the default; a Redis
// store shares the same records between onair processes.
//
// It owns only records. It never touches media objects or connections: the
// domain (internal/live) holds those and keeps their ids here.
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
	Viewers    int // current number of viewers
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
}

// Errors.
var (
	ErrNotFound = errors.New("store: not found")
	ErrExists   = errors.New("store: already exists")
)

// Store is implemented by Memory and by the Redis store. Each method is atomic:
// a room and its presenter are created together, and a viewer's record, the
// room's viewer set and its count change together.
type Store interface {
	// CreateRoom records a room and its presenter; ErrExists if either exists.
	CreateRoom(ctx context.Context, r Room, presenter User) error
	Room(ctx context.Context, id string) (Room, error)
	Rooms(ctx context.Context) ([]Room, error)
	// DeleteRoom removes a room, its presenter and its viewers, and returns the viewers.
	DeleteRoom(ctx context.Context, id string) ([]User, error)
	// AddViewer records a viewer in a room and returns the room with its new count.
	AddViewer(ctx context.Context, roomID string, u User) (Room, error)
	// RemoveViewer removes a viewer from a room.
	RemoveViewer(ctx context.Context, roomID, email string) error
	User(ctx context.Context, email string) (User, error)
	Viewers(ctx context.Context, roomID string) ([]User, error)
	// BindSession records the WebSocket session a user signals on.
	BindSession(ctx context.Context, email, sessionID string) error
	// Ping reports whether the store can be reached.
	Ping(ctx context.Context) error
	Close() error
}
