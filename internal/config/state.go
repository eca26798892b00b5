package config

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"time"
)

// State is where onair keeps its rooms and users: in memory (the default),
// or in Redis, shared by every onair process that uses the same Redis and
// prefix and outliving each of them.
type State struct {
	// RedisURL, when set, keeps the state in Redis: redis://[user:pass@]host:port/db,
	// rediss:// for TLS, or unix:///path/to/redis.sock.
	RedisURL string
	// RedisPrefix starts every key onair writes.
	RedisPrefix string
	// RedisOwnerTTL is how long this process's rooms outlive its last
	// heartbeat before another process may end them (heartbeats are sent
	// every third of it).
	RedisOwnerTTL time.Duration
}

// redisAlias is -redis, a short name for -redis-url; the environment
// variable is ONAIR_REDIS_URL only.
const redisAlias = "redis"

func (s *State) register(fs *flag.FlagSet) {
	fs.StringVar(&s.RedisURL, "redis-url", "", "keep rooms and users in this Redis (redis://host:6379/0, rediss://, unix://) instead of in memory (default: memory)")
	fs.StringVar(&s.RedisURL, redisAlias, "", "same as -redis-url")
	fs.StringVar(&s.RedisPrefix, "redis-prefix", "onair:", "prefix of every Redis key onair writes")
	fs.DurationVar(&s.RedisOwnerTTL, "redis-owner-ttl", 15*time.Second, "how long this process's rooms outlive its last heartbeat before another onair process ends them")
}

// check rejects settings that cannot work, saying what to do.
func (s State) check() error {
	if s.RedisURL != "" {
		u, err := url.Parse(s.RedisURL)
		if err != nil {
			return fmt.Errorf("-redis-url: %v", err)
		}
		switch u.Scheme {
		case "redis", "rediss", "unix":
		default:
			return fmt.Errorf("-redis-url: %q is not a redis://, rediss:// or unix:// URL", u.Redacted())
		}
	}
	if s.RedisOwnerTTL < 300*time.Millisecond {
		return errors.New("-redis-owner-ttl must be at least 300ms")
	}
	return nil
}
