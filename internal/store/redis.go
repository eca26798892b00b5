package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Redis is a Store in a Redis server, shared by every onair process that
// uses the same server and prefix. Every change that touches several keys is
// one Lua script (redis_scripts.go), so it is atomic. The client reconnects on
// its own: while Redis is unreachable each call fails fast with an error that
// names the server, and the next call after it is back succeeds.
type Redis struct {
	rdb    *redis.Client
	addr   string
	prefix string
}

var _ Store = (*Redis)(nil)

// DefaultRedisPrefix is the prefix of every key onair writes.
const DefaultRedisPrefix = "onair:"

// NewRedis returns a store on the Redis at url (redis://[user:pass@]host:port/db,
// rediss:// for TLS, or unix:///path), with every key under prefix. It does
// not connect: the first call does, and a Redis that is down is not an error
// here (Ping tells).
func NewRedis(rawURL, prefix string) (*Redis, error) {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis URL: %w", err)
	}
	q := url.Values{}
	if u, err := url.Parse(rawURL); err == nil {
		q = u.Query()
	}
	// Fail fast when Redis is away, so that clients get a 503 at once; the
	// URL's own settings (e.g. ?dial_timeout=5s) win. No retries: a script
	// whose reply was lost may have run, and must not run twice.
	if !q.Has("dial_timeout") {
		opts.DialTimeout = 2 * time.Second
	}
	if !q.Has("read_timeout") {
		opts.ReadTimeout = 2 * time.Second
	}
	if !q.Has("write_timeout") {
		opts.WriteTimeout = 2 * time.Second
	}
	if !q.Has("max_retries") {
		opts.MaxRetries = -1
	}
	opts.DialerRetries = 1
	if opts.ClientName == "" {
		host, _ := os.Hostname()
		opts.ClientName = fmt.Sprintf("onair-%s-%d", host, os.Getpid())
	}
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return &Redis{rdb: redis.NewClient(opts), addr: opts.Addr, prefix: prefix}, nil
}

// Addr is the Redis server's address (without credentials).
func (s *Redis) Addr() string { return s.addr }

// Client is the Redis client, for the cluster's own keys (internal/cluster)
// under the same prefix.
func (s *Redis) Client() *redis.Client { return s.rdb }

// RoomKey is the key of a room's record, for scripts that read it.
func (s *Redis) RoomKey(id string) string { return s.roomKey(id) }

// Prefix is the prefix of every key of this store.
func (s *Redis) Prefix() string { return s.prefix }

func (s *Redis) roomsKey() string            { return s.prefix + "rooms" }
func (s *Redis) roomKey(id string) string    { return s.prefix + "room:" + id }
func (s *Redis) viewersKey(id string) string { return s.prefix + "viewers:" + id }
func (s *Redis) userPrefix() string          { return s.prefix + "user:" }
func (s *Redis) userKey(email string) string { return s.userPrefix() + email }
func (s *Redis) ownerKey(o string) string    { return s.prefix + "owner:" + o }

// fail turns a script's refusal into the store's errors, and names the
// server in any other error.
func (s *Redis) fail(err error) error {
	switch {
	case err == nil:
		return nil
	case strings.Contains(err.Error(), "ONAIR_NOTFOUND"):
		return ErrNotFound
	case strings.Contains(err.Error(), "ONAIR_EXISTS"):
		return ErrExists
	}
	return fmt.Errorf("redis %s: %w", s.addr, err)
}

func (s *Redis) CreateRoom(ctx context.Context, r Room, presenter User) error {
	err := createRoomScript.Run(ctx, s.rdb,
		[]string{s.roomsKey(), s.roomKey(r.ID), s.viewersKey(r.ID), s.userKey(presenter.Email)},
		r.ID, r.Title, r.ProfileURL, presenter.Email, r.PipelineID, formatTime(r.CreatedAt), r.Owner,
		presenter.EndpointID, presenter.SessionID).Err()
	return s.fail(err)
}

func (s *Redis) RestoreRoom(ctx context.Context, r Room, presenter User, viewers []User) ([]string, error) {
	args := []any{r.ID, s.userPrefix(), r.Title, r.ProfileURL, presenter.Email, r.PipelineID,
		formatTime(r.CreatedAt), r.Owner, presenter.EndpointID, presenter.SessionID}
	for _, v := range viewers {
		args = append(args, v.Email, v.EndpointID, v.SessionID)
	}
	res, err := restoreRoomScript.Run(ctx, s.rdb,
		[]string{s.roomsKey(), s.roomKey(r.ID), s.viewersKey(r.ID)}, args...).Result()
	if err != nil {
		return nil, s.fail(err)
	}
	var skipped []string
	for _, e := range list(res) {
		skipped = append(skipped, str(e))
	}
	return skipped, nil
}

func (s *Redis) Room(ctx context.Context, id string) (Room, error) {
	res, err := roomScript.Run(ctx, s.rdb, []string{s.roomKey(id), s.viewersKey(id)}).Result()
	if err != nil {
		return Room{}, s.fail(err)
	}
	l := list(res)
	if len(l) != 2 {
		return Room{}, s.fail(fmt.Errorf("unexpected reply %v", res))
	}
	return roomOf(id, list(l[0]), l[1]), nil
}

func (s *Redis) Rooms(ctx context.Context) ([]Room, error) {
	res, err := roomsScript.Run(ctx, s.rdb, []string{s.roomsKey()}, s.roomKey(""), s.viewersKey("")).Result()
	if err != nil {
		return nil, s.fail(err)
	}
	out := []Room{}
	for _, e := range list(res) {
		l := list(e)
		if len(l) != 3 {
			return nil, s.fail(fmt.Errorf("unexpected reply %v", e))
		}
		out = append(out, roomOf(str(l[0]), list(l[1]), l[2]))
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func (s *Redis) DeleteRoom(ctx context.Context, id, pipelineID string) ([]User, error) {
	res, err := deleteRoomScript.Run(ctx, s.rdb,
		[]string{s.roomsKey(), s.roomKey(id), s.viewersKey(id)}, id, pipelineID, s.userPrefix()).Result()
	if err != nil {
		return nil, s.fail(err)
	}
	return usersOf(id, res), nil
}

func (s *Redis) AddViewer(ctx context.Context, roomID string, u User) (Room, error) {
	res, err := addViewerScript.Run(ctx, s.rdb,
		[]string{s.roomKey(roomID), s.viewersKey(roomID), s.userKey(u.Email)},
		roomID, u.Email, u.EndpointID, u.SessionID, u.Node).Result()
	if err != nil {
		return Room{}, s.fail(err)
	}
	l := list(res)
	if len(l) != 2 {
		return Room{}, s.fail(fmt.Errorf("unexpected reply %v", res))
	}
	return roomOf(roomID, list(l[0]), l[1]), nil
}

func (s *Redis) RemoveViewer(ctx context.Context, roomID, email string) error {
	err := removeViewerScript.Run(ctx, s.rdb, []string{s.userKey(email), s.viewersKey(roomID)}, roomID, email).Err()
	return s.fail(err)
}

func (s *Redis) User(ctx context.Context, email string) (User, error) {
	h, err := s.rdb.HGetAll(ctx, s.userKey(email)).Result()
	if err != nil {
		return User{}, s.fail(err)
	}
	if len(h) == 0 {
		return User{}, ErrNotFound
	}
	return User{Email: email, RoomID: h["room"], Role: Role(h["role"]), EndpointID: h["endpoint"],
		SessionID: h["session"], Node: h["node"]}, nil
}

func (s *Redis) Viewers(ctx context.Context, roomID string) ([]User, error) {
	res, err := viewersScript.Run(ctx, s.rdb, []string{s.roomKey(roomID), s.viewersKey(roomID)}, s.userPrefix()).Result()
	if err != nil {
		return nil, s.fail(err)
	}
	out := usersOf(roomID, res)
	sort.Slice(out, func(i, j int) bool { return out[i].Email < out[j].Email })
	return out, nil
}

func (s *Redis) BindSession(ctx context.Context, email, sessionID string) error {
	return s.fail(bindSessionScript.Run(ctx, s.rdb, []string{s.userKey(email)}, sessionID).Err())
}

func (s *Redis) MoveViewer(ctx context.Context, roomID, email, node, endpointID string) error {
	return s.fail(moveViewerScript.Run(ctx, s.rdb, []string{s.userKey(email)}, roomID, node, endpointID).Err())
}

// Heartbeat sets the owner's key with a TTL and reads its old value in one
// command (SET … PX … GET).
func (s *Redis) Heartbeat(ctx context.Context, owner string, ttl time.Duration) (bool, error) {
	if ttl < time.Millisecond {
		ttl = time.Millisecond
	}
	host, _ := os.Hostname()
	info := fmt.Sprintf("host=%s pid=%d at=%s", host, os.Getpid(), time.Now().UTC().Format(time.RFC3339))
	err := s.rdb.SetArgs(ctx, s.ownerKey(owner), info, redis.SetArgs{TTL: ttl.Round(time.Millisecond), Get: true}).Err()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, s.fail(err)
	}
	return true, nil
}

func (s *Redis) OwnerAlive(ctx context.Context, owner string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.ownerKey(owner)).Result()
	if err != nil {
		return false, s.fail(err)
	}
	return n == 1, nil
}

func (s *Redis) Retire(ctx context.Context, owner string) error {
	return s.fail(s.rdb.Del(ctx, s.ownerKey(owner)).Err())
}

func (s *Redis) Ping(ctx context.Context) error { return s.fail(s.rdb.Ping(ctx).Err()) }

func (s *Redis) Close() error { return s.rdb.Close() }

// formatTime and parseTime keep a time as Unix nanoseconds.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatInt(t.UnixNano(), 10)
}

func parseTime(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// roomOf makes a Room of a room hash's fields (as HGETALL lists them) and
// its count.
func roomOf(id string, fields []any, count any) Room {
	f := map[string]string{}
	for i := 0; i+1 < len(fields); i += 2 {
		f[str(fields[i])] = str(fields[i+1])
	}
	n, _ := count.(int64)
	return Room{ID: id, Title: f["title"], ProfileURL: f["profileUrl"], Presenter: f["presenter"],
		PipelineID: f["pipeline"], CreatedAt: parseTime(f["createdAt"]), Owner: f["owner"], Viewers: int(n)}
}

// usersOf makes viewers of a reply of {email, endpoint, session, node}.
func usersOf(roomID string, res any) []User {
	out := []User{}
	for _, e := range list(res) {
		l := list(e)
		if len(l) != 4 {
			continue
		}
		out = append(out, User{Email: str(l[0]), RoomID: roomID, Role: RoleViewer,
			EndpointID: str(l[1]), SessionID: str(l[2]), Node: str(l[3])})
	}
	return out
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
