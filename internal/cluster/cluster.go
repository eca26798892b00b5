// Package cluster lets several onair processes (nodes) that share one Redis
// serve every room together: the node registry (each node's id, advertise
// URL, load and whether it is draining, with a heartbeat TTL), the
// placement of relay pulls (which node each node pulls a room from: a tree
// of bounded fan-out rooted at the room's origin), and the WHEP client a
// node pulls a room with. See docs/scaling.md.
//
// It implements live.Cluster; the domain decides when to pull and release,
// this package decides from where, and carries the request.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/onair-live/onair/internal/auth"
)

// Config configures a node.
type Config struct {
	// Node is this node's id: its owner id in the store.
	Node string
	// AdvertiseURL is the base URL other nodes reach this node's HTTP at.
	AdvertiseURL string
	// Secret signs and verifies the tokens of relay pulls.
	Secret []byte
	// Fanout is the most pulls of one room one node serves.
	Fanout int
	// MaxViewers is the most viewers this node takes (0: no limit of its
	// own), told to the others so that they redirect viewers elsewhere.
	MaxViewers int
	// TTL is how long the node's registry entry outlives its last heartbeat
	// (renewed every third of it).
	TTL time.Duration
	// Load reports the node's load for the registry; it must not block.
	Load func() Load
	// WHEPPath is the path of WHEP under the advertise URL (default /whep).
	WHEPPath string
	Logger   *slog.Logger
}

// Load is one node's load, as the registry shows it.
type Load struct {
	Viewers, Rooms, Relays int
	// EgressBitrate is the node's media sent, in bit/s.
	EgressBitrate int64
	CPUPercent    float64
}

// Node is one node as the registry shows it (GET /signal/cluster/nodes).
type Node struct {
	ID            string  `json:"id"`
	URL           string  `json:"url"`
	Viewers       int     `json:"viewers"`
	Rooms         int     `json:"rooms"`
	Relays        int     `json:"relays"`
	EgressBitrate int64   `json:"egressBitrate"`
	CPUPercent    float64 `json:"cpu"`
	Draining      bool    `json:"draining"`
	MaxViewers    int     `json:"maxViewers,omitempty"`
}

// Cluster is this node's view of the others.
type Cluster struct {
	cfg       Config
	rdb       *redis.Client
	prefix    string
	roomKey   func(id string) string
	verifier  *auth.Verifier
	http      *http.Client
	log       *slog.Logger
	draining  chan struct{} // closed when a drain starts
	drainOnce sync.Once

	mu     sync.Mutex
	avoids map[string]time.Time // nodes this one could not reach, until when
}

// avoid keeps placement away from a node this one could not reach, for
// the registry's TTL (by which a dead node's entry has expired).
func (c *Cluster) avoid(node string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.avoids[node] = time.Now().Add(c.cfg.TTL)
}

// unreachable lists the nodes to avoid now.
func (c *Cluster) unreachable() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for n, until := range c.avoids {
		if time.Now().After(until) {
			delete(c.avoids, n)
			continue
		}
		out = append(out, n)
	}
	return out
}

// New returns the cluster of the nodes that share rdb under prefix;
// roomKey names a room's record (the store's), which placement reads the
// room's origin from.
func New(cfg Config, rdb *redis.Client, prefix string, roomKey func(string) string) (*Cluster, error) {
	v, err := auth.NewVerifier([][]byte{cfg.Secret})
	if err != nil {
		return nil, fmt.Errorf("cluster secret: %w", err)
	}
	if cfg.Fanout < 1 {
		cfg.Fanout = 16
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 15 * time.Second
	}
	if cfg.WHEPPath == "" {
		cfg.WHEPPath = "/whep"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Load == nil {
		cfg.Load = func() Load { return Load{} }
	}
	cfg.AdvertiseURL = strings.TrimRight(cfg.AdvertiseURL, "/")
	return &Cluster{cfg: cfg, rdb: rdb, prefix: prefix, roomKey: roomKey, verifier: v,
		http: &http.Client{Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // placement chooses the node; a redirect is a refusal
		}},
		log: cfg.Logger.With("component", "cluster", "node", cfg.Node), draining: make(chan struct{}),
		avoids: map[string]time.Time{}}, nil
}

// NodeID is this node's id.
func (c *Cluster) NodeID() string { return c.cfg.Node }

// Verify checks a relay token: signed with the cluster secret, with the
// relay grant.
func (c *Cluster) Verify(token string) (auth.Principal, error) {
	p, err := c.verifier.Verify(token)
	if err != nil {
		return auth.Principal{}, err
	}
	if !p.Has(auth.GrantRelay) {
		return auth.Principal{}, errors.New("the token has no relay grant")
	}
	return p, nil
}

// token mints this node's relay token.
func (c *Cluster) token() (string, error) {
	now := time.Now()
	return auth.Mint(c.cfg.Secret, auth.Claims{Subject: c.cfg.Node, Grants: []string{"relay"},
		IssuedAt: now.Unix(), ExpiresAt: now.Add(5 * time.Minute).Unix()})
}

// Pull implements live.Cluster: it places this node under a node that holds
// roomID and has a free slot, and POSTs the offer to its WHEP endpoint.
func (c *Cluster) Pull(ctx context.Context, roomID, offer string) (string, func(), error) {
	parent, err := c.place(ctx, roomID)
	if err != nil {
		return "", nil, err
	}
	unplace := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.unplace(ctx, roomID, parent.ID); err != nil {
			c.log.Debug("cannot remove a placement", "room", roomID, "err", err)
		}
	}
	answer, resource, err := c.post(ctx, parent.URL, roomID, offer)
	if err != nil {
		var ne net.Error
		var oe *net.OpError
		if errors.As(err, &oe) || (errors.As(err, &ne) && ne.Timeout()) {
			c.avoid(parent.ID)
		}
		unplace()
		return "", nil, fmt.Errorf("pull %s from %s: %w", roomID, parent.ID, err)
	}
	c.log.Info("relay pull placed", "room", roomID, "parent", parent.ID)
	release := func() {
		c.deleteResource(resource)
		unplace()
	}
	return answer, release, nil
}

// post sends a WHEP offer as a relay and returns the answer and the
// resource URL.
func (c *Cluster) post(ctx context.Context, base, roomID, offer string) (string, string, error) {
	tok, err := c.token()
	if err != nil {
		return "", "", err
	}
	u := base + c.cfg.WHEPPath + "/" + url.PathEscape(roomID) + "?relay=" + url.QueryEscape(c.cfg.Node)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(offer))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.http.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<10))
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", "", fmt.Errorf("WHEP %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	loc, err := resp.Location()
	if err != nil {
		return "", "", fmt.Errorf("WHEP answer without a Location: %w", err)
	}
	return string(body), loc.String(), nil
}

// deleteResource ends a pull at the node pulled from (WHEP DELETE); a node
// that is gone has ended it already.
func (c *Cluster) deleteResource(resource string) {
	tok, err := c.token()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, resource, nil)
	if err != nil {
		return
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.http.Do(req)
	if err != nil {
		c.log.Debug("relay release: node unreachable", "err", err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
}

// Drain marks this node draining in the registry, at once.
func (c *Cluster) Drain(ctx context.Context) {
	c.drainOnce.Do(func() { close(c.draining) })
	if err := c.heartbeat(ctx); err != nil {
		c.log.Warn("cannot tell the registry this node drains", "err", err)
	}
}

// Draining reports whether this node is draining.
func (c *Cluster) Draining() bool {
	select {
	case <-c.draining:
		return true
	default:
		return false
	}
}
