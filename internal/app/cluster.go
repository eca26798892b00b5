package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/onair-live/onair/internal/cluster"
	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/httpapi"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/sfu"
	"github.com/onair-live/onair/internal/store"
)

// node is this process's part in a cluster (-redis with -advertise-url):
// nil otherwise.
type node struct {
	cl   *cluster.Cluster
	log  *slog.Logger
	stop context.CancelFunc
	done chan struct{}

	drainTimeout time.Duration
	drainOnce    sync.Once
	drained      chan struct{} // closed when a drain is over
	closing      chan struct{} // closed by close: a drain still waiting gives up
	closeOnce    sync.Once
	waiting      sync.WaitGroup // the drain's wait, which close awaits

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
	n := &node{done: make(chan struct{}), lastAt: time.Now(), log: log.With("component", "cluster"),
		drainTimeout: cfg.DrainTimeout, drained: make(chan struct{}), closing: make(chan struct{})}
	cl, err := cluster.New(cluster.Config{Node: owner, AdvertiseURL: cfg.AdvertiseURL,
		Secret: []byte(cfg.ClusterSecret), Fanout: cfg.RelayFanout, MaxViewers: cfg.NodeMaxViewers, TTL: cfg.RedisOwnerTTL, Logger: log,
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
	if n == nil {
		return
	}
	n.closeOnce.Do(func() { close(n.closing) })
	n.waiting.Wait()
	if n.stop == nil {
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

// admission makes a draining node refuse new broadcasts and viewers, and a
// node over -node-max-viewers (or the media engine's hard limits) refuse
// new viewers, whom the transports send to other nodes.
func (n *node) admission(cfg config.Config, svc **live.Service, opts live.Options) live.Options {
	if n == nil {
		return opts
	}
	broadcast := opts.Admit
	opts.Admit = func() error {
		if n.cl.Draining() {
			return errors.New("this node is draining")
		}
		if broadcast != nil {
			return broadcast()
		}
		return nil
	}
	opts.AdmitViewer = func() error {
		if n.cl.Draining() {
			return errors.New("this node is draining")
		}
		if max := cfg.NodeMaxViewers; max > 0 && *svc != nil && (*svc).Load().Viewers >= max {
			return fmt.Errorf("this node serves its %d viewers (-node-max-viewers)", max)
		}
		if broadcast != nil {
			return broadcast() // the media engine's hard limits
		}
		return nil
	}
	return opts
}

// serve adds the cluster's admin endpoints to the API, and refuses new
// WebSockets (503, Retry-After) while the node drains.
func (n *node) serve(hc *httpapi.Config, svc **live.Service) {
	if n == nil {
		return
	}
	hc.ClusterNodes = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nodes, err := n.cl.Nodes(r.Context())
		if err != nil {
			http.Error(w, "the registry cannot be read: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(nodes)
	})
	hc.ClusterDrain = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.drain(*svc)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]any{"draining": true, "timeout": n.drainTimeout.String()})
	})
	if ws := hc.WebSocket; ws != nil {
		hc.WebSocket = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.cl.Draining() {
				w.Header().Set("Retry-After", "1")
				http.Error(w, "this node is draining: connect to another", http.StatusServiceUnavailable)
				return
			}
			ws.ServeHTTP(w, r)
		})
	}
}

// drain starts a drain, once: the node takes no new sessions, and drained
// is closed when its viewers and the nodes pulling from it have left, or
// after -drain-timeout.
func (n *node) drain(svc *live.Service) {
	n.drainOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		n.cl.Drain(ctx)
		cancel()
		l := svc.Load()
		n.log.Info("draining", "viewers", l.Viewers, "relays", l.Relays, "timeout", n.drainTimeout)
		n.waiting.Go(func() { n.waitDrained(svc) })
	})
}

func (n *node) waitDrained(svc *live.Service) {
	defer close(n.drained)
	deadline := time.NewTimer(n.drainTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		l := svc.Load()
		if l.Viewers == 0 && l.Relays == 0 {
			n.log.Info("drained")
			return
		}
		select {
		case <-deadline.C:
			n.log.Warn("drain timed out", "viewers", l.Viewers, "relays", l.Relays)
			return
		case <-n.closing: // shut down before the drain was over
			return
		case <-tick.C:
		}
	}
}
