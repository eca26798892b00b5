// Package app assembles onair from its parts (store, media engine, domain,
// transports, demo page) for one Config, and runs and stops them in order.
// cmd/onair and the end-to-end tests both build the server through it, so
// the tests exercise exactly what operators run.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/hls"
	"github.com/onair-live/onair/internal/httpapi"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/sfu"
	"github.com/onair-live/onair/internal/store"
	"github.com/onair-live/onair/internal/whip"
	"github.com/onair-live/onair/internal/wsapi"
	"github.com/onair-live/onair/web"
)

// App is one running onair.
type App struct {
	cfg    config.Config
	log    *slog.Logger
	engine *sfu.Engine
	store  store.Store
	svc    *live.Service
	ws     *wsapi.Server
	http   *http.Server
	rec    *recording  // nil unless recording: recording.go
	hls    *hls.Server // nil with -hls=false: hls.go
	turn   *turnRelay  // nil without TURN: turn.go
	node   *node       // nil unless one node of a cluster: cluster.go
	obs    *observers  // webhooks, alerts, metrics: observe.go

	// HTTPS (tls.go): nil for plain HTTP.
	tls       *tls.Config
	redirect  *http.Server
	httpsPort atomic.Value // string: the port Serve listens on

	conns atomic.Pointer[connCap] // the caps on Serve's connections: limits.go

	stopReaper context.CancelFunc
	reaperDone chan struct{}
	closeOnce  sync.Once
	drainOnce  sync.Once
	drained    chan struct{} // Drained without a cluster
}

// New builds the parts. Nothing listens until Serve.
func New(cfg config.Config, log *slog.Logger) (*App, error) {
	tlsConf, err := serverTLS(cfg, log, time.Now())
	if err != nil {
		return nil, err
	}
	acc, err := newAccess(cfg, log)
	if err != nil {
		return nil, err
	}
	obs := newObservers(cfg, log)
	rec, err := newRecording(cfg, log, obs.recordingOutcome)
	if err != nil {
		return nil, err
	}
	engine, err := sfu.New(sfu.Config{
		UDPPortMin: cfg.UDPPortMin, UDPPortMax: cfg.UDPPortMax, UDPMuxPort: cfg.UDPMuxPort, TCPMuxPort: cfg.ICETCPPort,
		PublicIPs: cfg.PublicIPs, Loopback: cfg.ICELoopback, AllowedIPs: cfg.ICEAllowedIPs,
		DisconnectTimeout: cfg.DisconnectTimeout, ConnectTimeout: cfg.ConnectTimeout,
		PresenterWait: cfg.PresenterWait, MaxVideoBitrate: cfg.MaxVideoBitrate, Writers: cfg.MediaWriters, Logger: log,
		SocketPerViewer: cfg.SocketPerViewer,
		OnConnect:       obs.connected,
	})
	if err != nil {
		return nil, err
	}
	st, err := newStore(cfg, log)
	if err != nil {
		_ = engine.Close()
		return nil, err
	}
	tr, err := newTURN(cfg, log, tlsConf, obs) // turn.go
	if err != nil {
		_ = engine.Close()
		_ = st.Close()
		return nil, err
	}
	owner := live.NewOwnerID()
	var svc *live.Service
	nd, err := newNode(cfg, log, st, owner, engine, &svc) // cluster.go
	if err != nil {
		_ = engine.Close()
		_ = st.Close()
		return nil, err
	}
	svc = live.New(st, engine, nd.admission(cfg, &svc, obs.watch(cfg, log, engine, live.Options{Logger: log, ReapInterval: cfg.ReapInterval, OwnerTTL: cfg.RedisOwnerTTL,
		Recorder: rec.factory(), OnRejected: obs.rejected, OfferWait: cfg.ConnectTimeout,
		Owner: owner, Cluster: nd.liveCluster(), RelayGrace: cfg.RelayGrace,
		Limits: live.Limits{MaxRooms: cfg.MaxRooms, MaxViewersPerRoom: cfg.MaxViewersPerRoom, MaxCandidates: cfg.MaxCandidates}})))
	ws := wsapi.NewServer(svc, wsapi.Config{MaxMessageBytes: cfg.MaxMessageBytes, Logger: log,
		Auth: acc.authn, MessagesPerSecond: cfg.MaxMessagesPerSecond, OriginPatterns: acc.origins, OnRejected: obs.rejected,
		PingInterval: cfg.WSPingInterval, IdleTimeout: cfg.WSIdleTimeout, BindTimeout: cfg.WSBindTimeout})
	wc := whip.Config{StreamKey: cfg.StreamKey, StreamKeys: cfg.StreamKeys,
		ICEServers: cfg.ICEServers, TURN: tr.servers, MaxBodyBytes: cfg.MaxMessageBytes, Logger: log, Auth: acc.authn, OnRejected: obs.rejected}
	if nd != nil {
		wc.RelayAuth, wc.OtherNode = nd.cl.Verify, nd.cl.OtherNode
	}
	wh := whip.New(svc, wc)
	hs := newHLS(cfg, log, svc, acc.authn) // hls.go
	hc := httpapi.Config{
		BasePath: cfg.BasePath, MaxBodyBytes: cfg.MaxMessageBytes, ICEServers: cfg.ICEServers, TURN: tr.servers,
		WebSocket: ws, WHIP: wh, Demo: web.Static(), Recordings: rec.api(), Logger: log, Metrics: obs.start(svc, engine, hlsCounts(hs)),
		Auth: acc.authn, AllowedOrigins: acc.origins, OnRejected: obs.rejected,
	}
	nd.serve(&hc, &svc) // cluster.go: its endpoints, and no new WebSocket while draining
	if acc.sessions != nil {
		hc.Sessions = acc.sessions // not a nil *PerAddress in the interface
	}
	if hs != nil {
		hc.HLS = hs
	}
	handler := httpapi.New(svc, hc)
	a := &App{cfg: cfg, log: log, engine: engine, store: st, svc: svc, ws: ws, rec: rec, obs: obs, turn: tr, hls: hs, node: nd,
		http: newHTTPServer(cfg, handler, log), reaperDone: make(chan struct{}), tls: tlsConf, drained: make(chan struct{})}
	if tlsConf != nil {
		a.redirect = newHTTPServer(cfg, http.HandlerFunc(a.redirectToHTTPS), log)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.stopReaper = cancel
	go func() {
		defer close(a.reaperDone)
		svc.Run(ctx) // heartbeat and reconciliation with the store, and the reaper
	}()
	nd.run()
	return a, nil
}

// Drain starts a drain (SIGTERM or POST /signal/cluster/drain on a cluster
// node): the node takes no new sessions, and Drained is closed once its
// viewers and the nodes pulling from it have left, or after -drain-timeout.
// Not a cluster node, it is over at once.
func (a *App) Drain() {
	if a.node == nil {
		a.drainOnce.Do(func() { close(a.drained) })
		return
	}
	a.node.drain(a.svc)
}

// Drained is closed when a drain is over: then Shutdown.
func (a *App) Drained() <-chan struct{} {
	if a.node == nil {
		return a.drained
	}
	return a.node.drained
}

// Service is the broadcast domain, for tests and tools.
func (a *App) Service() *live.Service { return a.svc }

// WebSockets is the number of open signalling connections.
func (a *App) WebSockets() int { return a.ws.Sessions() }

// Serve serves HTTP on l until Shutdown, or HTTPS (and WSS) if the Config
// asks for TLS; it returns nil after a shutdown.
func (a *App) Serve(l net.Listener) error {
	scheme := "http"
	l = a.capConnections(l) // limits.go
	if a.tls != nil {
		scheme = "https"
		if _, port, err := net.SplitHostPort(l.Addr().String()); err == nil {
			a.httpsPort.Store(port)
		}
		l = tls.NewListener(l, a.tls)
	}
	a.log.Info("onair listening", "addr", l.Addr().String(), "scheme", scheme, "basePath", a.cfg.BasePath,
		"iceLoopback", a.cfg.ICELoopback, "udpMuxPort", a.cfg.UDPMuxPort)
	if err := a.http.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown ends every broadcast (viewers hear stopCommunication), closes the
// WebSockets after flushing them, stops HTTP and releases the media engine.
func (a *App) Shutdown(ctx context.Context) error {
	var err error
	a.closeOnce.Do(func() {
		a.log.Info("shutting down")
		a.stopReaper()
		<-a.reaperDone
		a.svc.Shutdown(ctx)
		if a.hls != nil {
			a.hls.Close() // after the broadcasts: their ends woke its waiting requests
		}
		a.node.close()
		a.ws.Shutdown(ctx)
		err = a.http.Shutdown(ctx)
		if rerr := a.shutdownRedirect(ctx); err == nil {
			err = rerr
		}
		if cerr := a.engine.Close(); err == nil {
			err = cerr
		}
		if terr := a.turn.close(); err == nil {
			err = terr
		}
		a.rec.close(ctx) // waits for upload hooks in flight
		if oerr := a.obs.shutdown(ctx); err == nil {
			err = oerr
		}
		if cerr := a.store.Close(); err == nil {
			err = cerr
		}
		a.log.Info("shut down")
	})
	return err
}
