// Package config reads onair's configuration, once, from command-line flags
// and ONAIR_* environment variables (a flag -foo-bar is also ONAIR_FOO_BAR;
// the flag wins). Nothing else in onair reads the environment.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/onair-live/onair/internal/media"
)

// Config is everything onair can be told.
type Config struct {
	Addr     string
	BasePath string

	// HTTPS. Plain HTTP when TLSCert, TLSKey and TLSSelfSigned are all unset;
	// see tls.go.
	TLSCert, TLSKey  string
	TLSSelfSigned    bool
	HTTPRedirectAddr string

	// ICE and media.
	UDPPortMin, UDPPortMax uint16
	UDPMuxPort             int
	PublicIPs              []string
	ICELoopback            bool
	ICEAllowedIPs          []netip.Prefix
	ICEServers             []media.ICEServer
	MaxVideoBitrate        int  // bit/s, 0 = no cap
	MediaWriters           int  // goroutines sending to viewers, 0 = one per core
	SocketPerViewer        bool // each viewer its own UDP sockets, not its writer's

	// Timeouts.
	DisconnectTimeout time.Duration
	ConnectTimeout    time.Duration
	PresenterWait     time.Duration
	ReapInterval      time.Duration
	ShutdownTimeout   time.Duration

	// WHIP publishing: a stream key per room, or one for every room; none
	// configured means anyone may publish.
	StreamKey  string
	StreamKeys map[string]string

	// Limits.
	MaxMessageBytes int64

	LogLevel  string
	LogFormat string

	// DebugAddr, when set, serves Go's profiler (/debug/pprof/) there.
	DebugAddr string

	// Deadlines and connection caps: hardening.go.
	Hardening

	Observe // webhooks, alerts and metrics: observe.go
	Record  // recording: record.go
	State   // memory or Redis: state.go
	Auth    // tokens and origins: auth.go
	Limits  // rates and sizes: limits.go
	Network // ICE over TCP and TURN: network.go
	HLS     // Low-Latency HLS: hls.go
	Cluster // several nodes serving every room: cluster.go
}

// Load parses args (without the program name) over the environment.
func Load(args []string, getenv func(string) string, usageOut io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("onair", flag.ContinueOnError)
	fs.SetOutput(usageOut)
	fs.StringVar(&c.Addr, "addr", ":8080", "HTTP listen address")
	fs.StringVar(&c.BasePath, "base-path", "/signal", "path prefix of the REST API and WebSocket")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate (chain) file: serve HTTPS and WSS instead of HTTP (needs -tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key file of -tls-cert")
	fs.BoolVar(&c.TLSSelfSigned, "tls-self-signed", false, "serve HTTPS with a throwaway self-signed certificate (local demos only: browsers warn)")
	fs.StringVar(&c.HTTPRedirectAddr, "http-redirect-addr", "", "also listen for plain HTTP here and redirect it to HTTPS (e.g. :80)")
	udpRange := fs.String("ice-udp-ports", "", "ICE UDP port range MIN-MAX (default: any ephemeral port)")
	fs.IntVar(&c.UDPMuxPort, "ice-udp-mux-port", 0, "serve all media on this one UDP port (0: off)")
	publicIPs := fs.String("public-ip", "", "comma-separated public IPs to advertise in place of local ones (NAT 1:1)")
	fs.BoolVar(&c.ICELoopback, "ice-loopback", false, "offer loopback ICE candidates (tests and local demos)")
	allowed := fs.String("ice-allowed-ips", "", "comma-separated local IPs or prefixes to gather candidates on (default: all)")
	iceServers := fs.String("ice-servers", "", "comma-separated STUN/TURN URLs handed to clients; TURN credentials as turn:user:pass@host:port")
	fs.IntVar(&c.MediaWriters, "media-writers", 0, "goroutines that send media to viewers, each to a shard of them (0: one per core)")
	fs.BoolVar(&c.SocketPerViewer, "ice-socket-per-viewer", false, "give each viewer UDP sockets of its own (default: viewers share their media writer's sockets, one per writer and local address)")
	kbps := fs.Int("max-video-kbps", 0, "video bitrate asked of presenters, in kbit/s (0: no cap)")
	fs.DurationVar(&c.DisconnectTimeout, "disconnect-timeout", 15*time.Second, "end a session whose media stays disconnected this long")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", 30*time.Second, "end a session whose media has not connected this long after its offer")
	fs.DurationVar(&c.PresenterWait, "presenter-wait", 10*time.Second, "how long a viewer's offer waits for the presenter's")
	fs.DurationVar(&c.ReapInterval, "reap-interval", 30*time.Second, "how often orphan pipelines and endpoints are reclaimed (0: never)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a graceful shutdown may take")
	fs.Int64Var(&c.MaxMessageBytes, "max-message-bytes", 64<<10, "largest WebSocket message and request body accepted")
	fs.StringVar(&c.StreamKey, "whip-stream-key", "", "bearer token WHIP encoders need to publish any room (default: open)")
	streamKeys := fs.String("whip-stream-keys", "", "per-room WHIP bearer tokens, ROOM=KEY,ROOM=KEY")
	fs.StringVar(&c.DebugAddr, "debug-addr", "", "serve the Go profiler (/debug/pprof/) on this address, e.g. 127.0.0.1:6060 (default: off)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	c.Hardening.register(fs)
	c.Observe.register(fs)
	c.Record.register(fs)
	c.State.register(fs)
	c.Cluster.register(fs)
	origins := c.Auth.register(fs)
	exempt := c.Limits.register(fs)
	c.Network.register(fs)
	c.HLS.register(fs)

	if err := applyEnv(fs, getenv); err != nil {
		return Config{}, err
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := c.parseLists(*udpRange, *publicIPs, *allowed, *iceServers, *streamKeys, *kbps); err != nil {
		return Config{}, err
	}
	c.BasePath = "/" + strings.Trim(c.BasePath, "/")
	if c.BasePath == "/" {
		c.BasePath = ""
	}
	if err := c.checkSections(); err != nil {
		return Config{}, err
	}
	if err := c.Auth.load(*origins, os.ReadFile); err != nil {
		return Config{}, err
	}
	if c.Auth.Tokens() && (c.StreamKey != "" || len(c.StreamKeys) > 0) {
		return Config{}, errors.New("-whip-stream-key(s) cannot be used with -auth-secret: WHIP encoders then send a token as their bearer key (mint one with: onair token -sub NAME -grant publish -room ROOM -ttl 8760h)")
	}
	if err := c.Limits.load(*exempt); err != nil {
		return Config{}, err
	}
	if err := c.Hardening.check(); err != nil {
		return Config{}, err
	}
	if c.MaxMessageBytes < 1024 {
		return Config{}, errors.New("-max-message-bytes must be at least 1024")
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return Config{}, fmt.Errorf("-log-format: %q is not text or json", c.LogFormat)
	}
	return c, nil
}

// parseLists reads the flags given as strings or lists: the ICE port
// range, public and allowed IPs, ICE servers, WHIP stream keys and the video
// bitrate.
func (c *Config) parseLists(udpRange, publicIPs, allowed, iceServers, streamKeys string, kbps int) error {
	var err error
	if c.UDPPortMin, c.UDPPortMax, err = parseRange(udpRange); err != nil {
		return fmt.Errorf("-ice-udp-ports: %w", err)
	}
	c.PublicIPs = splitList(publicIPs)
	for _, ip := range c.PublicIPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			return fmt.Errorf("-public-ip: %q is not an IP address", ip)
		}
	}
	for _, s := range splitList(allowed) {
		p, err := parsePrefix(s)
		if err != nil {
			return fmt.Errorf("-ice-allowed-ips: %w", err)
		}
		c.ICEAllowedIPs = append(c.ICEAllowedIPs, p)
	}
	for _, s := range splitList(iceServers) {
		srv, err := parseICEServer(s)
		if err != nil {
			return fmt.Errorf("-ice-servers: %w", err)
		}
		c.ICEServers = append(c.ICEServers, srv)
	}
	for _, kv := range splitList(streamKeys) {
		room, key, ok := strings.Cut(kv, "=")
		if !ok || room == "" || key == "" {
			return fmt.Errorf("-whip-stream-keys: %q is not ROOM=KEY", kv)
		}
		if c.StreamKeys == nil {
			c.StreamKeys = map[string]string{}
		}
		c.StreamKeys[room] = key
	}
	if kbps < 0 {
		return errors.New("-max-video-kbps must not be negative")
	}
	if c.MediaWriters < 0 {
		return errors.New("-media-writers must not be negative")
	}
	c.MaxVideoBitrate = kbps * 1000
	return nil
}

// applyEnv sets each flag from its ONAIR_* variable, if set; the command
// line is parsed after, and wins.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == redisAlias {
			return // an alias: its variable is that of the flag it stands for
		}
		name := "ONAIR_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" {
			if err := f.Value.Set(v); err != nil && envErr == nil {
				envErr = fmt.Errorf("%s=%q: %w", name, v, err)
			}
		}
	})
	return envErr
}

// checkSections checks the sections that check themselves, in this order
// (the first error is reported).
func (c *Config) checkSections() error {
	for _, check := range []func() error{c.checkTLS, c.checkNetwork, c.Observe.check, c.HLS.check,
		c.Record.check, func() error { return c.Cluster.check(c.RedisURL) }, c.State.check} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseRange(s string) (uint16, uint16, error) {
	if s == "" {
		return 0, 0, nil
	}
	lo, hi, ok := strings.Cut(s, "-")
	a, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	b, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	if !ok || err1 != nil || err2 != nil || a == 0 || a > b {
		return 0, 0, fmt.Errorf("%q is not a range such as 50000-50100", s)
	}
	return uint16(a), uint16(b), nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// parseICEServer reads stun:host:port, or turn:user:pass@host:port (also
// turns:), into a server entry.
func parseICEServer(s string) (media.ICEServer, error) {
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok || rest == "" {
		return media.ICEServer{}, fmt.Errorf("%q is not a STUN or TURN URL", s)
	}
	switch scheme {
	case "stun", "stuns":
		return media.ICEServer{URLs: []string{s}}, nil
	case "turn", "turns":
	default:
		return media.ICEServer{}, fmt.Errorf("%q: scheme must be stun, stuns, turn or turns", s)
	}
	creds, host, hasCreds := strings.Cut(rest, "@")
	if !hasCreds {
		return media.ICEServer{URLs: []string{s}}, nil
	}
	user, pass, _ := strings.Cut(creds, ":")
	u, err := url.PathUnescape(user)
	if err != nil {
		return media.ICEServer{}, err
	}
	p, err := url.PathUnescape(pass)
	if err != nil {
		return media.ICEServer{}, err
	}
	return media.ICEServer{URLs: []string{scheme + ":" + host}, Username: u, Credential: p}, nil
}
