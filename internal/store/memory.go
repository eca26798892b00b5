package store

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Memory is a Store in this process's memory.
type Memory struct {
	mu     sync.Mutex
	rooms  map[string]*memRoom
	users  map[string]User
	owners map[string]time.Time // heartbeat expiry by owner
}

type memRoom struct {
	room    Room
	viewers map[string]struct{}
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty store.
func NewMemory() *Memory {
	return &Memory{rooms: map[string]*memRoom{}, users: map[string]User{}, owners: map[string]time.Time{}}
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
	presenter.RoomID, presenter.Role = r.ID, RolePresenter
	m.rooms[r.ID] = &memRoom{room: r, viewers: map[string]struct{}{}}
	m.users[presenter.Email] = presenter
	return nil
}

func (m *Memory) RestoreRoom(_ context.Context, r Room, presenter User, viewers []User) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mr, ok := m.rooms[r.ID]
	if ok && mr.room.PipelineID != r.PipelineID {
		return nil, ErrExists
	}
	if u, ok := m.users[presenter.Email]; ok && (u.RoomID != r.ID || u.Role != RolePresenter) {
		return nil, ErrExists
	}
	if !ok {
		r.Viewers = 0
		mr = &memRoom{room: r, viewers: map[string]struct{}{}}
		m.rooms[r.ID] = mr
	}
	if _, ok := m.users[presenter.Email]; !ok {
		presenter.RoomID, presenter.Role = r.ID, RolePresenter
		m.users[presenter.Email] = presenter
	}
	var skipped []string
	for _, v := range viewers {
		if u, ok := m.users[v.Email]; ok {
			if u.RoomID != r.ID || u.Role != RoleViewer {
				skipped = append(skipped, v.Email)
				continue
			}
		} else {
			v.RoomID, v.Role = r.ID, RoleViewer
			m.users[v.Email] = v
		}
		mr.viewers[v.Email] = struct{}{}
	}
	return skipped, nil
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

func (m *Memory) DeleteRoom(_ context.Context, id, pipelineID string) ([]User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rooms[id]
	if !ok || (pipelineID != "" && r.room.PipelineID != pipelineID) {
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

func (m *Memory) MoveViewer(_ context.Context, roomID, email, node, endpointID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[email]
	if !ok || u.RoomID != roomID || u.Role != RoleViewer {
		return ErrNotFound
	}
	u.Node, u.EndpointID = node, endpointID
	m.users[email] = u
	return nil
}

func (m *Memory) Heartbeat(_ context.Context, owner string, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	exp, ok := m.owners[owner]
	m.owners[owner] = now.Add(ttl)
	return ok && now.Before(exp), nil
}

func (m *Memory) OwnerAlive(_ context.Context, owner string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	exp, ok := m.owners[owner]
	if ok && !time.Now().Before(exp) {
		delete(m.owners, owner)
		ok = false
	}
	return ok, nil
}

func (m *Memory) Retire(_ context.Context, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.owners, owner)
	return nil
}

func (m *Memory) Ping(context.Context) error { return nil }
func (m *Memory) Close() error               { return nil }
