// Package httpapi serves onair's REST API under the base path (rooms, the
// media admin API, health; docs/protocol.md), mounts the signalling WebSocket and
// the demo page, and maps domain errors to the protocol's error bodies. It is
// a thin transport: it holds no broadcast state.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/onair-live/onair/internal/apierr"
	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/media"
)

// Broadcasts is what the REST API needs of the domain.
type Broadcasts interface {
	Rooms(ctx context.Context) ([]live.RoomInfo, error)
	StartBroadcast(ctx context.Context, who auth.Principal, req live.StartRequest) (live.RoomInfo, error)
	EndBroadcast(ctx context.Context, who auth.Principal) error
	Join(ctx context.Context, who auth.Principal, roomID string) (live.RoomInfo, error)
	Leave(ctx context.Context, who auth.Principal) error
	Pipelines() []media.Pipeline
	PresenterEndpoints(ctx context.Context, email string) ([]media.Endpoint, error)
	Orphans(ctx context.Context) ([]media.Pipeline, []media.Endpoint, error)
	ReclaimOrphans(ctx context.Context) (int, error)
	Usage() media.Usage
	Health(ctx context.Context) error
}

// Config is what the API needs besides the domain.
type Config struct {
	BasePath     string
	MaxBodyBytes int64
	ICEServers   []media.ICEServer
	WebSocket    http.Handler // served at BasePath + "/ws"
	WHIP         http.Handler // served at /whip/ and /whep/
	HLS          http.Handler // served at /hls/ (nil: off)
	Demo         fs.FS        // served at "/" if set
	Recordings   Recordings   // served at GET /media/recordings if set
	Metrics      http.Handler // served at GET /metrics if set
	// ClusterNodes and ClusterDrain, if set, are served (admin) at
	// GET BasePath/cluster/nodes and POST BasePath/cluster/drain.
	ClusterNodes, ClusterDrain http.Handler
	Logger                     *slog.Logger
	RequestTimeout             time.Duration

	// Access (access.go). Auth nil is trusted-header mode.
	Auth *auth.Authenticator
	// AllowedOrigins are the browser origins that may call (CORS and the
	// WebSocket); empty or "*": any.
	AllowedOrigins []string
	// Sessions, if set, bounds how often one address may start or join a
	// room, open the WebSocket, or POST to WHIP or WHEP.
	Sessions Limiter
	// OnRejected observes refusals by reason (the Reject* constants), for
	// metrics; it must not block.
	OnRejected func(reason string)

	// TURN, if set, gives more ICE servers for each request, with
	// credentials minted for it (the embedded TURN server).
	TURN func(r *http.Request) []media.ICEServer
}

// New returns the server's whole HTTP handler.
func New(svc Broadcasts, cfg Config) http.Handler {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 20 * time.Second
	}
	a := &api{svc: svc, cfg: cfg, log: cfg.Logger.With("component", "http"), origins: newOrigins(cfg.AllowedOrigins)}
	mux := http.NewServeMux()
	b := cfg.BasePath
	// Every route needs a valid token when tokens are on, but the health
	// check (load balancers) and the demo page; the admin API needs the
	// admin grant; routes that make sessions are rate-limited per address.
	mux.HandleFunc("GET "+b+"/room/list", a.authenticated(a.listRooms))
	mux.Handle("POST "+b+"/room/live", a.limited(http.HandlerFunc(a.startBroadcast), false))
	mux.HandleFunc("DELETE "+b+"/room/live", a.endBroadcast)
	mux.Handle("POST "+b+"/room/view", a.limited(http.HandlerFunc(a.join), false))
	mux.HandleFunc("DELETE "+b+"/room/view", a.leave)
	adminAPI := map[string]http.HandlerFunc{
		"GET " + b + "/media/pipelines":              a.pipelines,
		"GET " + b + "/media/endpoints/{email}":      a.endpoints,
		"GET " + b + "/media/pipelines/exception":    a.orphans,
		"DELETE " + b + "/media/pipelines/exception": a.reclaim,
		"GET " + b + "/media/cpu":                    a.cpu,
		"GET " + b + "/media/memory":                 a.memory,
	}
	if cfg.Recordings != nil {
		adminAPI["GET "+b+"/media/recordings"] = a.listRecordings
		adminAPI["GET "+b+"/media/recordings/{name}"] = a.getRecording
	}
	for pattern, h := range adminAPI {
		mux.Handle(pattern, a.admin(h))
	}
	if cfg.ClusterNodes != nil && cfg.ClusterDrain != nil {
		mux.Handle("GET "+b+"/cluster/nodes", a.admin(cfg.ClusterNodes))
		mux.Handle("POST "+b+"/cluster/drain", a.admin(cfg.ClusterDrain))
	}
	mux.HandleFunc("GET "+b+"/healthcheck/_check", a.health)
	mux.HandleFunc("GET "+b+"/config", a.authenticated(a.clientConfig))
	if cfg.WebSocket != nil {
		// The WebSocket authenticates its own upgrades (the token is in
		// the query: browsers cannot set headers on it).
		mux.Handle("GET "+b+"/ws", a.limited(cfg.WebSocket, false))
	}
	if cfg.WHIP != nil {
		// Registered per method: a method-less "/whip/" and "OPTIONS /" below
		// are each more specific than the other in one way, which net/http
		// refuses with a panic when the handler is built.
		// WHIP authenticates its own requests (its errors are plain text).
		for _, m := range []string{http.MethodPatch, http.MethodDelete, http.MethodOptions} {
			mux.Handle(m+" /whip/", cfg.WHIP)
			mux.Handle(m+" /whep/", cfg.WHIP)
		}
		// Their POSTs negotiate before answering: longer than the server's
		// write timeout allows (deadlines.go).
		mux.Handle("POST /whip/", a.limited(Extend(cfg.WHIP, offerRouteTimeout), true))
		mux.Handle("POST /whep/", a.limited(Extend(cfg.WHIP, offerRouteTimeout), true))
	}
	if cfg.HLS != nil {
		// HLS authenticates its own requests; players make several a
		// second, so they are not rate limited per address.
		mux.Handle("GET /hls/", cfg.HLS)
		mux.Handle("OPTIONS /hls/", cfg.HLS)
	}
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", a.admin(cfg.Metrics))
	}
	// Preflights that no route answers itself get the CORS headers alone.
	mux.HandleFunc("OPTIONS /", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	if cfg.Demo != nil {
		mux.Handle("GET /", http.FileServerFS(cfg.Demo))
	}
	return a.recoverer(a.cors(mux))
}

type api struct {
	svc     Broadcasts
	cfg     Config
	log     *slog.Logger
	origins origins
}

type roomBody struct {
	RoomID     string `json:"roomId"`
	Title      string `json:"title"`
	ProfileURL string `json:"profileUrl"`
	Count      string `json:"count"`
}

func roomJSON(r live.RoomInfo) roomBody {
	return roomBody{RoomID: r.RoomID, Title: r.Title, ProfileURL: r.ProfileURL, Count: strconv.Itoa(r.Count)}
}

func (a *api) listRooms(w http.ResponseWriter, r *http.Request) {
	rooms, err := a.svc.Rooms(r.Context())
	if err != nil {
		writeError(w, r, a.log, err)
		return
	}
	out := make([]roomBody, len(rooms))
	for i, room := range rooms {
		out[i] = roomJSON(room)
	}
	writeJSON(w, http.StatusOK, out)
}

// decode reads a JSON body into v, within the size cap.
func (a *api) decode(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes)
	if err := json.NewDecoder(body).Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			a.rejected(RejectBodyTooLarge)
			return live.ErrBadRequest.With("body larger than %d bytes", a.cfg.MaxBodyBytes)
		case errors.Is(err, io.EOF):
			return live.ErrBadRequest.With("empty body: send a JSON object")
		}
		return live.ErrBadRequest.With("malformed JSON body: %v", err)
	}
	return nil
}

func (a *api) startBroadcast(w http.ResponseWriter, r *http.Request) {
	who, ok := a.authenticate(w, r)
	if !ok {
		return
	}
	var req struct {
		RoomID     string `json:"roomId"`
		Title      string `json:"title"`
		ProfileURL string `json:"profileUrl"`
	}
	if err := a.decode(w, r, &req); err != nil {
		writeError(w, r, a.log, err)
		return
	}
	// The protocol requires all three fields (other transports need not).
	if err := required(map[string]string{"roomId": req.RoomID, "title": req.Title, "profileUrl": req.ProfileURL}); err != nil {
		writeError(w, r, a.log, err)
		return
	}
	if err := required(map[string]string{"email": who.Subject}); err != nil {
		writeError(w, r, a.log, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	room, err := a.svc.StartBroadcast(ctx, who, live.StartRequest{RoomID: req.RoomID, Title: req.Title, ProfileURL: req.ProfileURL})
	if err != nil {
		writeError(w, r, a.log, err)
		return
	}
	writeJSON(w, http.StatusCreated, roomJSON(room))
}

func (a *api) endBroadcast(w http.ResponseWriter, r *http.Request) {
	who, ok := a.authenticate(w, r)
	if !ok {
		return
	}
	if err := required(map[string]string{"email": who.Subject}); err != nil {
		writeError(w, r, a.log, err)
		return
	}
	if err := a.svc.EndBroadcast(r.Context(), who); err != nil {
		writeError(w, r, a.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *api) join(w http.ResponseWriter, r *http.Request) {
	who, ok := a.authenticate(w, r)
	if !ok {
		return
	}
	var req struct {
		RoomID string `json:"roomId"`
	}
	if err := a.decode(w, r, &req); err != nil {
		writeError(w, r, a.log, err)
		return
	}
	if err := required(map[string]string{"email": who.Subject, "roomId": req.RoomID}); err != nil {
		writeError(w, r, a.log, err)
		return
	}
	room, err := a.svc.Join(r.Context(), who, req.RoomID)
	if err != nil {
		writeError(w, r, a.log, err)
		return
	}
	writeJSON(w, http.StatusCreated, roomJSON(room))
}

func (a *api) leave(w http.ResponseWriter, r *http.Request) {
	who, ok := a.authenticate(w, r)
	if !ok {
		return
	}
	if err := required(map[string]string{"email": who.Subject}); err != nil {
		writeError(w, r, a.log, err)
		return
	}
	if err := a.svc.Leave(r.Context(), who); err != nil {
		writeError(w, r, a.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type pipelineBody struct {
	PipelineName string `json:"pipelineName"`
	PipelineID   string `json:"pipelineId"`
}

type endpointBody struct {
	EndpointID   string    `json:"endpointId"`
	EndpointName string    `json:"endpointName"`
	Stats        statsBody `json:"stats"`
}

// statsBody is an endpoint's counters (media.EndpointStats) in the API.
type statsBody struct {
	State            string   `json:"state"`
	PacketsIn        uint64   `json:"packetsIn"`
	PacketsOut       uint64   `json:"packetsOut"`
	BytesIn          uint64   `json:"bytesIn"`
	BytesOut         uint64   `json:"bytesOut"`
	PacketsDropped   uint64   `json:"packetsDropped"`
	NACKs            uint64   `json:"nacks"`
	PLIs             uint64   `json:"plis"`
	PacketsDirect    uint64   `json:"packetsDirect,omitempty"`
	PacketsDuplicate uint64   `json:"packetsDuplicate,omitempty"`
	Layer            string   `json:"layer,omitempty"`
	LayerPinned      bool     `json:"layerPinned,omitempty"`
	EstimateBPS      uint64   `json:"estimateBps,omitempty"`
	LayerSwitches    uint64   `json:"layerSwitches,omitempty"`
	Layers           []string `json:"layers,omitempty"`
}

func pipelinesJSON(ps []media.Pipeline) []pipelineBody {
	out := make([]pipelineBody, len(ps))
	for i, p := range ps {
		out[i] = pipelineBody{PipelineName: p.Name(), PipelineID: p.ID()}
	}
	return out
}

func (a *api) pipelines(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, pipelinesJSON(a.svc.Pipelines()))
}

func (a *api) endpoints(w http.ResponseWriter, r *http.Request) {
	eps, err := a.svc.PresenterEndpoints(r.Context(), r.PathValue("email"))
	if err != nil {
		writeError(w, r, a.log, err)
		return
	}
	out := make([]endpointBody, len(eps))
	for i, ep := range eps {
		out[i] = endpointBody{EndpointID: ep.ID(), EndpointName: ep.Name(), Stats: statsBody(ep.Stats())}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) orphans(w http.ResponseWriter, r *http.Request) {
	ps, _, err := a.svc.Orphans(r.Context())
	if err != nil {
		writeError(w, r, a.log, err)
		return
	}
	writeJSON(w, http.StatusOK, pipelinesJSON(ps))
}

func (a *api) reclaim(w http.ResponseWriter, r *http.Request) {
	n, err := a.svc.ReclaimOrphans(r.Context())
	if err != nil {
		writeError(w, r, a.log, err)
		return
	}
	a.log.Info("orphans reclaimed on request", "count", n)
	w.WriteHeader(http.StatusNoContent)
}

func percent(v float64) string { return fmt.Sprintf("%.2f%%", v) }

func (a *api) cpu(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, percent(a.svc.Usage().CPUPercent))
}

func (a *api) memory(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, percent(a.svc.Usage().MemoryPercent))
}

func (a *api) health(w http.ResponseWriter, r *http.Request) {
	if err := a.svc.Health(r.Context()); err != nil {
		a.log.Warn("health check failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "DOWN", "reason": apierr.Text(err)})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "UP"})
}

// iceServerBody is an ICE server as browsers take it (RTCIceServer).
type iceServerBody struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// clientConfig tells browser clients (the demo page) the ICE servers to use.
func (a *api) clientConfig(w http.ResponseWriter, r *http.Request) {
	all := a.cfg.ICEServers
	if a.cfg.TURN != nil {
		all = append(append([]media.ICEServer{}, all...), a.cfg.TURN(r)...)
	}
	servers := make([]iceServerBody, 0, len(all))
	for _, s := range all {
		servers = append(servers, iceServerBody{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	writeJSON(w, http.StatusOK, map[string]any{"iceServers": servers, "basePath": a.cfg.BasePath})
}

// required checks that the protocol's named fields are not empty, and says
// which are, by their names in the API.
func required(fields map[string]string) error {
	var missing []string
	for _, name := range []string{"email", "roomId", "title", "profileUrl"} {
		if v, ok := fields[name]; ok && strings.TrimSpace(v) == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return live.ErrBadRequest.With("missing %s", strings.Join(missing, ", "))
	}
	return nil
}
