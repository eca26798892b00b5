package store

import (
	"context"
	"sort"
	"sync"
)

// Memory is a Store in this process's memory.
type Memory struct {
	mu    sync.Mutex
	rooms map[string]*memRoom
	users map[string]User
}

type memRoom struct {
	room    Room
	viewers map[string]struct{}
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty store.
func NewMemory() *Memory {
	return &Memory{rooms: map[string]*memRoom{}, users: map[string]User{}}
}

func (m *Memory) CreateRoom(_ context.Context, r Room, presenter User) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.rooms[r.ID]; ok {
		return ErrExists
	}
	if _, ok := m.users[presenter.Email]; ok {
		return ErrExists
	}
	r.Viewers = 0
	m.rooms[r.ID] = &memRoom{room: r, viewers: map[string]struct{}{}}
	m.users[presenter.Email] = presenter
	return nil
}

func (m *Memory) Room(_ context.Context, id string) (Room, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rooms[id]
	if !ok {
		return Room{}, ErrNotFound
	}
	return r.snapshot(), nil
}

func (r *memRoom) snapshot() Room {
	out := r.room
	out.Viewers = len(r.viewers)
	return out
}

func (m *Memory) Rooms(_ context.Context) ([]Room, error) {
	m.mu.Lock()
	out := make([]Room, 0, len(m.rooms))
	for _, r := range m.rooms {
		out = append(out, r.snapshot())
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func (m *Memory) DeleteRoom(_ context.Context, id string) ([]User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rooms[id]
	if !ok {
		return nil, ErrNotFound
	}
	viewers := make([]User, 0, len(r.viewers))
	for email := range r.viewers {
		if u, ok := m.users[email]; ok {
			viewers = append(viewers, u)
		}
		delete(m.users, email)
	}
	if u, ok := m.users[r.room.Presenter]; ok && u.RoomID == id && u.Role == RolePresenter {
		delete(m.users, r.room.Presenter)
	}
	delete(m.rooms, id)
	return viewers, nil
}

func (m *Memory) AddViewer(_ context.Context, roomID string, u User) (Room, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rooms[roomID]
	if !ok {
		return Room{}, ErrNotFound
	}
	if _, ok := m.users[u.Email]; ok {
		return Room{}, ErrExists
	}
	u.RoomID, u.Role = roomID, RoleViewer
	m.users[u.Email] = u
	r.viewers[u.Email] = struct{}{}
	return r.snapshot(), nil
}

func (m *Memory) RemoveViewer(_ context.Context, roomID, email string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[email]
	if !ok || u.RoomID != roomID || u.Role != RoleViewer {
		return ErrNotFound
	}
	delete(m.users, email)
	if r, ok := m.rooms[roomID]; ok {
		delete(r.viewers, email)
	}
	return nil
}

func (m *Memory) User(_ context.Context, email string) (User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[email]
	if !ok {
		return User{}, ErrNotFound
	}
	return u, nil
}

func (m *Memory) Viewers(_ context.Context, roomID string) ([]User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rooms[roomID]
	if !ok {
		return nil, ErrNotFound
	}
	out := make([]User, 0, len(r.viewers))
	for email := range r.viewers {
		out = append(out, m.users[email])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Email < out[j].Email })
	return out, nil
}

func (m *Memory) BindSession(_ context.Context, email, sessionID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[email]
	if !ok {
		return ErrNotFound
	}
	u.SessionID = sessionID
	m.users[email] = u
	return nil
}

func (m *Memory) Ping(context.Context) error { return nil }
func (m *Memory) Close() error               { return nil }
