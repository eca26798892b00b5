package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/store"
)

// newStore returns the store the configuration asks for: Redis with
// -redis-url, memory otherwise. A Redis that does not answer yet is not an
// error: requests get 503 until it does, and the service's Sync restores
// what it must once it is back.
func newStore(cfg config.Config, log *slog.Logger) (store.Store, error) {
	if cfg.RedisURL == "" {
		return store.NewMemory(), nil
	}
	rs, err := store.NewRedis(cfg.RedisURL, cfg.RedisPrefix)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rs.Ping(ctx); err != nil {
		log.Warn("Redis unreachable at start: requests get 503 until it answers", "addr", rs.Addr(),
			"prefix", rs.Prefix(), "err", err)
	} else {
		log.Info("state in Redis", "addr", rs.Addr(), "prefix", rs.Prefix(), "ownerTTL", cfg.RedisOwnerTTL)
	}
	return rs, nil
}
