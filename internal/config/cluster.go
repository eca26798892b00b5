package config

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Cluster makes several onair processes that share one Redis serve every
// room together (docs/scaling.md): it is on when -redis and -advertise-url
// are both set.
type Cluster struct {
	// AdvertiseURL is the base URL other nodes use to reach this node's
	// HTTP (e.g. http://10.0.0.5:8080); a relay pull POSTs to
	// AdvertiseURL + /whep/{room}.
	AdvertiseURL string
	// ClusterSecret signs the tokens nodes carry when they pull a room
	// from each other (at least 32 bytes).
	ClusterSecret string
	// RelayFanout is the most pulls one node serves for one room.
	RelayFanout int
	// RelayGrace is how long a pull outlives its last local viewer.
	RelayGrace time.Duration
	// DrainTimeout bounds a drain (SIGTERM, POST /signal/cluster/drain):
	// how long the node waits for its viewers and the nodes pulling from it
	// to leave before it shuts down.
	DrainTimeout time.Duration
	// NodeMaxViewers is the most viewers this node serves before it sends
	// new ones to other nodes (0: no limit of its own).
	NodeMaxViewers int
}

// ClusterOn reports whether this process is one node of a cluster.
func (c Config) ClusterOn() bool { return c.RedisURL != "" && c.AdvertiseURL != "" }

func (c *Cluster) register(fs *flag.FlagSet) {
	fs.StringVar(&c.AdvertiseURL, "advertise-url", "", "with -redis: the base URL other onair nodes reach this one at (http://host:port); turns on serving rooms across nodes (default: off)")
	fs.StringVar(&c.ClusterSecret, "cluster-secret", "", "secret (32+ bytes) that signs the tokens nodes use to pull rooms from each other; required with -redis and -advertise-url")
	fs.IntVar(&c.RelayFanout, "relay-fanout", 16, "the most nodes that pull one room from one node (the origin, then relays: a tree)")
	fs.DurationVar(&c.RelayGrace, "relay-grace", 10*time.Second, "how long a node keeps pulling a room after its last local viewer left")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 5*time.Minute, "how long a draining node waits for its viewers and pulls to leave before it shuts down")
	fs.IntVar(&c.NodeMaxViewers, "node-max-viewers", 0, "the most viewers this node serves before new ones are sent to other nodes (WHEP 307, REST 503) (0: no limit)")
}

// check rejects cluster settings that cannot work, saying what to do.
func (c Cluster) check(redisURL string) error {
	if c.AdvertiseURL != "" {
		u, err := url.Parse(c.AdvertiseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("-advertise-url: %q is not an http:// or https:// base URL", c.AdvertiseURL)
		}
		if redisURL != "" && c.ClusterSecret == "" {
			return errors.New("-cluster-secret (ONAIR_CLUSTER_SECRET) is required with -redis and -advertise-url: " +
				"the same secret on every node, e.g. openssl rand -hex 32")
		}
	}
	if c.ClusterSecret != "" && len(strings.TrimSpace(c.ClusterSecret)) < 32 {
		return errors.New("-cluster-secret must be at least 32 bytes (e.g. openssl rand -hex 32)")
	}
	if c.RelayFanout < 1 {
		return errors.New("-relay-fanout must be at least 1")
	}
	if c.RelayGrace < 0 || c.DrainTimeout < 0 || c.NodeMaxViewers < 0 {
		return errors.New("-relay-grace, -drain-timeout and -node-max-viewers must not be negative")
	}
	return nil
}
