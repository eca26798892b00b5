package config

import (
	"errors"
	"flag"
	"syscall"
	"time"
)

// Hardening bounds how long and how many connections a client may hold, so
// that an idle, slow or vanished client cannot keep resources for ever
// (docs/hardening.md).
type Hardening struct {
	// HTTPReadTimeout bounds reading a whole request, body included.
	HTTPReadTimeout time.Duration
	// HTTPWriteTimeout bounds writing a response, from the end of its
	// request's headers. Routes that wait longer (WHIP/WHEP offers) extend
	// their own deadlines; WebSockets have none once upgraded.
	HTTPWriteTimeout time.Duration
	// HTTPIdleTimeout closes a keep-alive connection idle this long.
	HTTPIdleTimeout time.Duration

	// WSPingInterval is how often an open WebSocket is pinged, and
	// WSIdleTimeout how long it may stay without a pong or a message
	// before it is closed as dropped.
	WSPingInterval time.Duration
	WSIdleTimeout  time.Duration
	// WSBindTimeout closes a WebSocket that has sent no accepted offer
	// this long after it opened.
	WSBindTimeout time.Duration

	// MaxConnections caps the open TCP connections (HTTP and WebSocket)
	// of this process; MaxConnectionsPerAddress those of one client
	// address, but for addresses in SessionsLimitExempt (0: no cap).
	MaxConnections           int
	MaxConnectionsPerAddress int
}

func (h *Hardening) register(fs *flag.FlagSet) {
	fs.DurationVar(&h.HTTPReadTimeout, "http-read-timeout", 30*time.Second, "longest time to read a whole HTTP request, body included")
	fs.DurationVar(&h.HTTPWriteTimeout, "http-write-timeout", 30*time.Second, "longest time to write an HTTP response (WHIP/WHEP offers extend theirs; WebSockets have none)")
	fs.DurationVar(&h.HTTPIdleTimeout, "http-idle-timeout", 60*time.Second, "close a keep-alive HTTP connection idle this long")
	fs.DurationVar(&h.WSPingInterval, "ws-ping-interval", 20*time.Second, "ping each WebSocket this often")
	fs.DurationVar(&h.WSIdleTimeout, "ws-idle-timeout", 45*time.Second, "close a WebSocket that sent no pong and no message this long (as if it dropped)")
	fs.DurationVar(&h.WSBindTimeout, "ws-bind-timeout", 30*time.Second, "close a WebSocket that has no accepted offer this long after it opened")
	fs.IntVar(&h.MaxConnections, "max-connections", defaultMaxConnections(), "open TCP connections (HTTP and WebSocket) in this process (default: three quarters of the open-file limit; 0: no cap)")
	fs.IntVar(&h.MaxConnectionsPerAddress, "max-connections-per-address", 256, "open TCP connections from one client address, but for -sessions-limit-exempt (0: no cap)")
}

// check rejects settings that cannot work.
func (h Hardening) check() error {
	if h.HTTPReadTimeout <= 0 || h.HTTPWriteTimeout <= 0 || h.HTTPIdleTimeout <= 0 {
		return errors.New("-http-read-timeout, -http-write-timeout and -http-idle-timeout must be positive")
	}
	if h.WSPingInterval <= 0 || h.WSIdleTimeout <= 0 || h.WSBindTimeout <= 0 {
		return errors.New("-ws-ping-interval, -ws-idle-timeout and -ws-bind-timeout must be positive")
	}
	if h.WSIdleTimeout <= h.WSPingInterval {
		return errors.New("-ws-idle-timeout must be longer than -ws-ping-interval, or a healthy client would be closed between two pings")
	}
	if h.MaxConnections < 0 || h.MaxConnectionsPerAddress < 0 {
		return errors.New("-max-connections and -max-connections-per-address must not be negative (0: no cap)")
	}
	return nil
}

// defaultMaxConnections is three quarters of the process's open-file limit
// (Go raises the soft limit to the hard one at start), leaving the rest to
// media sockets, recordings and logs; at least 1024.
func defaultMaxConnections() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 1024
	}
	n := rl.Cur - rl.Cur/4
	if n > 1<<20 {
		n = 1 << 20
	}
	return max(1024, int(n))
}
