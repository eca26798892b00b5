package app

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/onair-live/onair/internal/cluster"
	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/sfu"
	"github.com/onair-live/onair/internal/store"
)

// node is this process's part in a cluster (-redis with -advertise-url):
// nil otherwise.
type node struct {
	cl   *cluster.Cluster
	stop context.CancelFunc
	done chan struct{}

	mu        sync.Mutex
	lastBytes uint64
	lastAt    time.Time
}

// newNode joins the cluster of the nodes that share the store's Redis. svc
// is read for the registry's load once the service exists.
func newNode(cfg config.Config, log *slog.Logger, st store.Store, owner string, engine *sfu.Engine, svc **live.Service) (*node, error) {
	if !cfg.ClusterOn() {
		return nil, nil
	}
	rs, ok := st.(*store.Redis)
	if !ok {
		return nil, errors.New("-advertise-url needs the state in Redis (-redis)")
	}
	n := &node{done: make(chan struct{}), lastAt: time.Now()}
	cl, err := cluster.New(cluster.Config{Node: owner, AdvertiseURL: cfg.AdvertiseURL,
		Secret: []byte(cfg.ClusterSecret), Fanout: cfg.RelayFanout, TTL: cfg.RedisOwnerTTL, Logger: log,
		Load: func() cluster.Load { return n.load(*svc, engine) }}, rs.Client(), rs.Prefix(), rs.RoomKey)
	if err != nil {
		return nil, err
	}
	n.cl = cl
	log.Info("cluster node", "node", owner, "advertise", cfg.AdvertiseURL, "fanout", cfg.RelayFanout)
	return n, nil
}

// load is the node's load for the registry: the domain's counts, the
// media engine's egress bit rate since the last call and its CPU.
func (n *node) load(svc *live.Service, engine *sfu.Engine) cluster.Load {
	var l cluster.Load
	if svc != nil {
		c := svc.Load()
		l.Viewers, l.Rooms, l.Relays = c.Viewers, c.Rooms, c.Relays
	}
	out := engine.Traffic().BytesOut
	now := time.Now()
	n.mu.Lock()
	if secs := now.Sub(n.lastAt).Seconds(); secs > 0 && out >= n.lastBytes {
		l.EgressBitrate = int64(float64(out-n.lastBytes) * 8 / secs)
	}
	n.lastBytes, n.lastAt = out, now
	n.mu.Unlock()
	l.CPUPercent = engine.Usage().CPUPercent
	return l
}

// run keeps the node's registry entry until close.
func (n *node) run() {
	if n == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	go func() {
		defer close(n.done)
		n.cl.Run(ctx)
	}()
}

// close removes the node's registry entry.
func (n *node) close() {
	if n == nil || n.stop == nil {
		return
	}
	n.stop()
	<-n.done
}

// liveCluster is the domain's view of the cluster (nil when not one).
func (n *node) liveCluster() live.Cluster {
	if n == nil {
		return nil
	}
	return n.cl
}
