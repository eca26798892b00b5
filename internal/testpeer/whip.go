package testpeer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// WHIPClient speaks WHIP (RFC 9725) and WHEP to a server, as an encoder or
// a player does: an SDP offer in a POST, then PATCH and DELETE on the
// session URL the server returns. Like Client, its methods never fail the
// test. It keeps no connection open between requests, so it leaves no
// goroutine behind.
type WHIPClient struct {
	origin string // e.g. http://127.0.0.1:41234
	http   *http.Client
}

// NewWHIPClient returns a client of the server at origin (scheme and host).
func NewWHIPClient(origin string) *WHIPClient {
	return &WHIPClient{origin: origin, http: &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true},
		Timeout:   30 * time.Second,
	}}
}

// WHIP returns a WHIP/WHEP client of the server.
func (s *Server) WHIP() *WHIPClient {
	return NewWHIPClient(strings.TrimSuffix(s.URL, s.Config.BasePath))
}

// Do sends a request to path (e.g. /whip/room) with these headers and body.
func (c *WHIPClient) Do(method, path string, header http.Header, body string) Response {
	r := Response{Method: method, Path: path}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.origin+path, rd)
	if err != nil {
		r.Err = err
		return r
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := c.http.Do(req)
	if err != nil {
		r.Err = err
		return r
	}
	defer resp.Body.Close()
	r.Status, r.Header = resp.StatusCode, resp.Header
	r.Body, r.Err = io.ReadAll(resp.Body)
	return r
}

// Post sends an SDP offer to /whip/{room} or /whep/{room}.
func (c *WHIPClient) Post(path, offer, token string) Response {
	h := http.Header{"Content-Type": {"application/sdp"}}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return c.Do(http.MethodPost, path, h, offer)
}

// WHIPOptions change how a peer publishes or watches over WHIP/WHEP.
type WHIPOptions struct {
	// Token is sent as Authorization: Bearer on every request.
	Token string
	// Query is added to the POST's URL (title, profileUrl).
	Query url.Values
	// StripCandidates sends an offer with no candidates and trickles none,
	// as OBS and FFmpeg do: the server learns the client's address from its
	// connectivity checks (a peer-reflexive candidate).
	StripCandidates bool
	// SetupPassive sends a=setup:passive in place of actpass, as FFmpeg
	// does: the server must be the DTLS client.
	SetupPassive bool
}

// HTTPError is a WHIP/WHEP request the server refused.
type HTTPError struct{ Response Response }

func (e *HTTPError) Error() string { return e.Response.String() }

// WHIPSession is a WHIP or WHEP resource a peer created on the server.
type WHIPSession struct {
	// URL is the session's absolute URL; Location is as the server sent it.
	URL, Location string
	// Created is the POST's response.
	Created Response

	client *WHIPClient
	peer   *peer
	token  string

	mu     sync.Mutex
	etag   string
	answer string
	offer  string // the local offer, with its candidates
}

// PublishWHIP publishes the publisher's media to a room over WHIP: it
// gathers every candidate, POSTs the offer to /whip/{room}, and applies the
// answer. It does not wait for the media connection.
func (p *Publisher) PublishWHIP(ctx context.Context, c *WHIPClient, roomID string, o WHIPOptions) (*WHIPSession, error) {
	return p.peer.postOffer(ctx, c, "/whip/"+url.PathEscape(roomID), o)
}

// WatchWHEP watches a room over WHEP, as PublishWHIP publishes.
func (v *ViewerPeer) WatchWHEP(ctx context.Context, c *WHIPClient, roomID string, o WHIPOptions) (*WHIPSession, error) {
	return v.peer.postOffer(ctx, c, "/whep/"+url.PathEscape(roomID), o)
}

// GatheredOffer makes an offer, sets it and waits until every local
// candidate is in it: the non-trickle offer WHIP and WHEP clients send.
func (p *peer) GatheredOffer(ctx context.Context) (string, error) {
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(offer); err != nil {
		return "", err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", fmt.Errorf("gathering: %w", ctx.Err())
	}
	return p.pc.LocalDescription().SDP, nil
}

func (p *peer) postOffer(ctx context.Context, c *WHIPClient, path string, o WHIPOptions) (*WHIPSession, error) {
	gathered, err := p.GatheredOffer(ctx)
	if err != nil {
		return nil, err
	}
	offer := gathered
	if !strings.Contains(offer, "a=candidate:") {
		return nil, errors.New("the gathered offer has no candidate")
	}
	if o.StripCandidates {
		offer = dropLines(offer, "a=candidate:", "a=end-of-candidates")
	}
	if o.SetupPassive {
		if !strings.Contains(offer, "a=setup:actpass") {
			return nil, errors.New("the offer has no a=setup:actpass to rewrite")
		}
		offer = strings.ReplaceAll(offer, "a=setup:actpass", "a=setup:passive")
	}
	if len(o.Query) > 0 {
		path += "?" + o.Query.Encode()
	}
	r := c.Post(path, offer, o.Token)
	if r.Err != nil || r.Status != http.StatusCreated {
		return nil, &HTTPError{Response: r}
	}
	loc := r.Header.Get("Location")
	u, err := url.Parse(c.origin)
	if err != nil {
		return nil, err
	}
	ref, err := url.Parse(loc)
	if loc == "" || err != nil {
		return nil, fmt.Errorf("%s: bad Location %q", r, loc)
	}
	s := &WHIPSession{URL: u.ResolveReference(ref).String(), Location: loc, Created: r,
		client: c, peer: p, token: o.Token, etag: r.Header.Get("ETag"), answer: string(r.Body), offer: gathered}
	if err := p.setAnswer(s.answer); err != nil {
		return s, err
	}
	return s, nil
}

// ETag is the session's entity tag: from the POST, then from each ICE restart.
func (s *WHIPSession) ETag() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.etag
}

// Answer is the server's answer the peer uses: the POST's, then the one
// rebuilt after each ICE restart.
func (s *WHIPSession) Answer() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.answer
}

// path is the session URL's path and query, for WHIPClient.Do.
func (s *WHIPSession) path() string {
	u, err := url.Parse(s.URL)
	if err != nil {
		return s.Location
	}
	return u.RequestURI()
}

func (s *WHIPSession) header(contentType string) http.Header {
	h := http.Header{}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	if s.token != "" {
		h.Set("Authorization", "Bearer "+s.token)
	}
	return h
}

// Patch sends an sdpfrag with If-Match set to ifMatch (none if empty).
func (s *WHIPSession) Patch(ifMatch, frag string) Response {
	h := s.header("application/trickle-ice-sdpfrag")
	if ifMatch != "" {
		h.Set("If-Match", ifMatch)
	}
	return s.client.Do(http.MethodPatch, s.path(), h, frag)
}

// Delete ends the session.
func (s *WHIPSession) Delete() Response {
	return s.client.Do(http.MethodDelete, s.path(), s.header(""), "")
}

// TrickleFrag is an sdpfrag of the peer's first local candidate, with its
// current ICE credentials, as a trickling client PATCHes it.
func (s *WHIPSession) TrickleFrag() (string, error) {
	s.mu.Lock()
	f := fragOf(s.offer)
	s.mu.Unlock()
	if len(f.candidates) == 0 {
		return "", errors.New("no local candidate")
	}
	f.candidates = f.candidates[:1]
	return f.String(), nil
}

// RestartICE restarts ICE as RFC 9725 (section 4.3.2) has a client do it:
// an offer with new ICE credentials, whose credentials and candidates go to
// the server in a PATCH with If-Match: *; the server's new credentials and
// candidates from the 200 response are then applied as a new answer (the
// previous answer with them in place of the old). It returns the PATCH's
// response.
func (s *WHIPSession) RestartICE(ctx context.Context) (Response, error) {
	return s.RestartICEIfMatch(ctx, "*")
}

// RestartICEIfMatch is RestartICE with this If-Match (e.g. a quoted "*").
func (s *WHIPSession) RestartICEIfMatch(ctx context.Context, ifMatch string) (Response, error) {
	pc := s.peer.pc
	old := fragOf(pc.LocalDescription().SDP)
	offer, err := pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		return Response{}, err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return Response{}, err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return Response{}, fmt.Errorf("gathering: %w", ctx.Err())
	}
	local := fragOf(pc.LocalDescription().SDP)
	if local.ufrag == "" || local.ufrag == old.ufrag || local.pwd == old.pwd {
		return Response{}, fmt.Errorf("the restart offer has ufrag %q", local.ufrag)
	}
	r := s.Patch(ifMatch, local.String())
	if r.Err != nil || r.Status != http.StatusOK {
		return r, &HTTPError{Response: r}
	}
	remote := fragOf(string(r.Body))
	if remote.ufrag == "" || remote.pwd == "" || len(remote.candidates) == 0 {
		return r, fmt.Errorf("%s: the restart answer lacks credentials or candidates", r)
	}
	s.mu.Lock()
	answer := withICE(s.answer, remote)
	s.mu.Unlock()
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return r, fmt.Errorf("applying the restarted answer: %w", err)
	}
	s.mu.Lock()
	s.answer, s.etag, s.offer = answer, r.Header.Get("ETag"), pc.LocalDescription().SDP
	s.mu.Unlock()
	return r, nil
}

// sdpFrag is the ICE part of an SDP or an sdpfrag: credentials, the first
// media section's m= line and mid, and candidates (without "a=").
type sdpFrag struct {
	ufrag, pwd, mline, mid string
	candidates             []string
}

// fragOf reads the ICE credentials and the distinct candidates of an SDP or
// sdpfrag.
func fragOf(sdp string) sdpFrag {
	var f sdpFrag
	seen := map[string]bool{}
	for _, l := range strings.Split(sdp, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "a=ice-ufrag:") && f.ufrag == "":
			f.ufrag = strings.TrimPrefix(l, "a=ice-ufrag:")
		case strings.HasPrefix(l, "a=ice-pwd:") && f.pwd == "":
			f.pwd = strings.TrimPrefix(l, "a=ice-pwd:")
		case strings.HasPrefix(l, "m=") && f.mline == "":
			f.mline = l
		case strings.HasPrefix(l, "a=mid:") && f.mid == "":
			f.mid = strings.TrimPrefix(l, "a=mid:")
		case strings.HasPrefix(l, "a=candidate:"):
			c := strings.TrimPrefix(l, "a=")
			if !seen[c] {
				seen[c] = true
				f.candidates = append(f.candidates, c)
			}
		}
	}
	return f
}

// String is the fragment as an RFC 8840 sdpfrag body.
func (f sdpFrag) String() string {
	var b strings.Builder
	b.WriteString("a=ice-ufrag:" + f.ufrag + "\r\n")
	b.WriteString("a=ice-pwd:" + f.pwd + "\r\n")
	if f.mline != "" {
		b.WriteString(f.mline + "\r\n")
		b.WriteString("a=mid:" + f.mid + "\r\n")
	}
	for _, c := range f.candidates {
		b.WriteString("a=" + c + "\r\n")
	}
	return b.String()
}

// withICE returns sdp with f's credentials in place of its own, and f's
// candidates in place of its own, in its first media section.
func withICE(sdp string, f sdpFrag) string {
	var out []string
	media := 0
	for _, l := range strings.Split(strings.TrimRight(sdp, "\r\n"), "\r\n") {
		switch {
		case strings.HasPrefix(l, "a=ice-ufrag:"):
			l = "a=ice-ufrag:" + f.ufrag
		case strings.HasPrefix(l, "a=ice-pwd:"):
			l = "a=ice-pwd:" + f.pwd
		case strings.HasPrefix(l, "a=candidate:"), strings.HasPrefix(l, "a=end-of-candidates"):
			continue
		case strings.HasPrefix(l, "m="):
			media++
			if media == 2 {
				out = append(out, candidateLines(f)...)
			}
		}
		out = append(out, l)
	}
	if media < 2 {
		out = append(out, candidateLines(f)...)
	}
	return strings.Join(out, "\r\n") + "\r\n"
}

func candidateLines(f sdpFrag) []string {
	out := make([]string, 0, len(f.candidates)+1)
	for _, c := range f.candidates {
		out = append(out, "a="+c)
	}
	return append(out, "a=end-of-candidates")
}

// dropLines removes the lines that start with any of the prefixes.
func dropLines(sdp string, prefixes ...string) string {
	var b bytes.Buffer
	for _, l := range strings.SplitAfter(sdp, "\n") {
		drop := false
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				drop = true
			}
		}
		if !drop {
			b.WriteString(l)
		}
	}
	return b.String()
}

// MuteSTUN stops the peer from sending any STUN message from now on (no
// keep-alive, no answer to the server's checks) while its media still
// flows, as FFmpeg's WHIP client behaves once connected.
func (p *peer) MuteSTUN() { p.plug.noSTUN.Store(true) }

// isSTUN tells STUN from DTLS, RTP and RTCP by the first byte (RFC 7983).
func isSTUN(b []byte) bool { return len(b) > 0 && b[0] < 4 }

// WHIPPublisher is a publisher on a WHIP session.
type WHIPPublisher struct {
	Peer    *Publisher
	Session *WHIPSession
}

// WHEPViewer is a viewer on a WHEP session.
type WHEPViewer struct {
	Peer    *ViewerPeer
	Session *WHIPSession
}

// MustWHIPPublisher publishes pub (a new VP8 publisher if nil) to roomID over
// WHIP and waits for the media connection, failing the test otherwise. When
// the test ends it DELETEs the session (whatever the answer) and closes the
// publisher.
func MustWHIPPublisher(t testing.TB, s *Server, pub *Publisher, roomID string, o WHIPOptions) *WHIPPublisher {
	t.Helper()
	if pub == nil {
		var err error
		if pub, err = NewPublisher(PublisherOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(pub.Close)
	ctx, cancel := context.WithTimeout(context.Background(), ConnectTimeout)
	defer cancel()
	sess, err := pub.PublishWHIP(ctx, s.WHIP(), roomID, o)
	if err != nil {
		t.Fatalf("WHIP publish to %s: %v", roomID, err)
	}
	t.Cleanup(func() { sess.Delete() })
	if err := pub.WaitConnected(ctx); err != nil {
		t.Fatalf("WHIP publisher of %s: %v", roomID, err)
	}
	return &WHIPPublisher{Peer: pub, Session: sess}
}

// MustWHEPViewer watches roomID over WHEP with vp (a new VP8 viewer if nil)
// and waits for the media connection, as MustWHIPPublisher.
func MustWHEPViewer(t testing.TB, s *Server, vp *ViewerPeer, roomID string, o WHIPOptions) *WHEPViewer {
	t.Helper()
	if vp == nil {
		var err error
		if vp, err = NewViewerPeer(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(vp.Close)
	ctx, cancel := context.WithTimeout(context.Background(), ConnectTimeout)
	defer cancel()
	sess, err := vp.WatchWHEP(ctx, s.WHIP(), roomID, o)
	if err != nil {
		t.Fatalf("WHEP watch of %s: %v", roomID, err)
	}
	t.Cleanup(func() { sess.Delete() })
	if err := vp.WaitConnected(ctx); err != nil {
		t.Fatalf("WHEP viewer of %s: %v", roomID, err)
	}
	return &WHEPViewer{Peer: vp, Session: sess}
}

// JoinViewerWith is JoinViewer with a viewer peer of the caller's (one that
// takes H.264, say).
func (s *Server) JoinViewerWith(ctx context.Context, vp *ViewerPeer, email, roomID string, o ViewerOptions) (*Viewer, error) {
	r := s.REST.WithToken(o.Token).Join(email, roomID)
	if err := r.Want(http.StatusCreated); err != nil {
		vp.Close()
		return nil, err
	}
	ws, err := DialWS(ctx, s.WSURLWith(o.Token))
	if err != nil {
		vp.Close()
		return nil, err
	}
	v := &Viewer{Email: email, RoomID: roomID, WS: ws, Peer: vp}
	if err := vp.negotiate(ctx, ws, IDViewer, roomID, email, o.Negotiate); err != nil {
		v.Drop()
		return nil, fmt.Errorf("viewer %s: %w", email, err)
	}
	if err := vp.WaitConnected(ctx); err != nil {
		v.Drop()
		return nil, fmt.Errorf("viewer %s: %w", email, err)
	}
	return v, nil
}

// SelectedRemote is the address (ip:port) of the remote candidate of the
// peer's selected ICE pair.
func (p *peer) SelectedRemote() (string, error) {
	pair, err := p.SelectedPair()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s:%d", pair.Remote.Address, pair.Remote.Port), nil
}

// SelectedPair is the peer's selected ICE candidate pair.
func (p *peer) SelectedPair() (*webrtc.ICECandidatePair, error) {
	var dtls *webrtc.DTLSTransport
	for _, tr := range p.pc.GetTransceivers() {
		if s := tr.Sender(); s != nil && s.Transport() != nil {
			dtls = s.Transport()
		} else if r := tr.Receiver(); r != nil && r.Transport() != nil {
			dtls = r.Transport()
		}
		if dtls != nil {
			break
		}
	}
	if dtls == nil {
		return nil, errors.New("no transport")
	}
	pair, err := dtls.ICETransport().GetSelectedCandidatePair()
	if err != nil {
		return nil, err
	}
	if pair == nil {
		return nil, errors.New("no selected candidate pair")
	}
	return pair, nil
}

// CandidateAddrs are the addresses (ip:port) of an SDP's or sdpfrag's
// candidates.
func CandidateAddrs(sdp string) []string {
	var out []string
	for _, c := range fragOf(sdp).candidates {
		// candidate:<foundation> <component> <transport> <priority> <ip> <port> typ …
		if f := strings.Fields(c); len(f) >= 6 {
			out = append(out, f[4]+":"+f[5])
		}
	}
	return out
}
