package loadtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/codec"
)

// publisher is the broadcast: one pion peer that sends synthetic video (and
// Opus audio) over the WebSocket protocol or WHIP, paced by tickers, with a
// keyframe every keyint and, if asked, on each PLI or FIR it receives.
type publisher struct {
	o     *Options
	c     *client
	email string
	codec webrtc.RTPCodecParameters

	pc          *webrtc.PeerConnection
	video       *webrtc.TrackLocalStaticRTP
	audio       *webrtc.TrackLocalStaticRTP
	ws          *wsSession
	location    string // WHIP resource
	roomStarted bool   // POST /room/live succeeded

	connected chan struct{}
	lost      chan struct{}
	lostOnce  sync.Once
	stop      chan struct{}
	stopOnce  sync.Once
	media     sync.WaitGroup // the senders
	rtcp      sync.WaitGroup // the RTCP readers

	layers                               *layers // with -simulcast
	forceKey                             atomic.Bool
	plis, firs                           atomic.Uint64
	frames, keyframes, packets, sentBits atomic.Uint64
}

// startPublisher creates the room, negotiates and waits for the media
// connection, then starts sending. On error everything is undone.
func startPublisher(ctx context.Context, o *Options, c *client) (_ *publisher, err error) {
	p := &publisher{o: o, c: c, email: publisherEmail(o), codec: vp8Codec,
		connected: make(chan struct{}), lost: make(chan struct{}), stop: make(chan struct{})}
	if o.Codec == "h264" {
		p.codec = h264Codec
	}
	api, err := publisherAPI(p.codec, o.LoopbackOnly, o.Simulcast)
	if err != nil {
		return nil, err
	}
	if p.pc, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			p.close(context.Background())
		}
	}()
	p.pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		switch s {
		case webrtc.PeerConnectionStateConnected:
			select {
			case <-p.connected:
			default:
				close(p.connected)
			}
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			p.lostOnce.Do(func() { close(p.lost) })
		}
	})
	if o.Simulcast {
		err = p.addLayers()
	} else {
		p.video, err = p.addTrack(p.codec, "video")
	}
	if err != nil {
		return nil, err
	}
	if o.Audio {
		if p.audio, err = p.addTrack(opusCodec, "audio"); err != nil {
			return nil, err
		}
	}
	off, err := makeOffer(ctx, p.pc)
	if err != nil {
		return nil, err
	}
	if err := p.signal(ctx, off); err != nil {
		return nil, err
	}
	select {
	case <-p.connected:
	case <-p.lost:
		return nil, errors.New("publisher: media connection failed")
	case <-ctx.Done():
		return nil, fmt.Errorf("publisher: media connection: %w", ctx.Err())
	}
	p.media.Add(1)
	if o.Simulcast {
		go p.sendLayers()
	} else {
		go p.sendVideo()
	}
	if p.audio != nil {
		p.media.Add(1)
		go p.sendAudio()
	}
	return p, nil
}

func (p *publisher) addTrack(c webrtc.RTPCodecParameters, kind string) (*webrtc.TrackLocalStaticRTP, error) {
	track, err := webrtc.NewTrackLocalStaticRTP(c.RTPCodecCapability, kind, "onair-loadtest")
	if err != nil {
		return nil, err
	}
	tr, err := p.pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return nil, err
	}
	p.rtcp.Add(1)
	go p.readRTCP(tr.Sender())
	return track, nil
}

// signal sends the offer over the chosen protocol and applies the answer.
func (p *publisher) signal(ctx context.Context, off offer) error {
	if p.o.Publish == "whip" {
		answer, loc, err := p.c.postOffer(ctx, "whip", p.o.Room, p.email, off.gatheredSDP)
		if err != nil {
			return fmt.Errorf("publisher: %w", err)
		}
		p.location = loc
		return p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer})
	}
	if err := p.c.startBroadcast(ctx, p.email, p.o.Room); err != nil {
		return fmt.Errorf("publisher: %w", err)
	}
	p.roomStarted = true
	ws, err := dialWS(ctx, p.c, p.email, p.pc, nil)
	if err != nil {
		return fmt.Errorf("publisher: %w", err)
	}
	p.ws = ws
	if err := ws.negotiate(ctx, "presenter", p.o.Room, p.email, off.trickleSDP, off.candidates); err != nil {
		return fmt.Errorf("publisher: %w", err)
	}
	return nil
}

// readRTCP counts the keyframe requests the server sends and, with
// -honor-pli, makes the next frame a keyframe.
func (p *publisher) readRTCP(sender *webrtc.RTPSender) {
	p.readKeyRequests(sender.ReadRTCP, &p.forceKey)
}

// readKeyRequests reads RTCP with read until it fails, counting keyframe
// requests and, with -honor-pli, setting force.
func (p *publisher) readKeyRequests(read func() ([]rtcp.Packet, interceptor.Attributes, error), force *atomic.Bool) {
	defer p.rtcp.Done()
	for {
		pkts, _, err := read()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			switch pkt.(type) {
			case *rtcp.PictureLossIndication:
				p.plis.Add(1)
			case *rtcp.FullIntraRequest:
				p.firs.Add(1)
			default:
				continue
			}
			if p.o.HonorPLI {
				force.Store(true)
			}
		}
	}
}

// sendVideo sends one frame per tick, all its packets at once, as an encoder
// hands them to the network.
func (p *publisher) sendVideo() {
	defer p.media.Done()
	gop := max(1, int(math.Round(p.o.KeyInt.Seconds()*p.o.FPS)))
	keySize, interSize := frameSizes(p.o.Bitrate, p.o.FPS, gop)
	h264 := strings.EqualFold(p.codec.MimeType, codec.H264)
	tick := time.NewTicker(time.Duration(float64(time.Second) / p.o.FPS))
	defer tick.Stop()
	start := time.Now()
	seq, tsBase := uint16(rand.Uint32()), rand.Uint32()
	sinceKey := gop // the first frame is a keyframe
	var pkt rtp.Packet
	for frame := uint32(0); ; frame++ {
		key := sinceKey >= gop || p.forceKey.Swap(false)
		if key {
			sinceKey = 0
			p.keyframes.Add(1)
		}
		sinceKey++
		now := time.Now()
		st := stamp{sentNanos: now.UnixNano(), frame: frame}
		size := interSize
		if key {
			size = keySize
		}
		var payloads [][]byte
		if h264 {
			payloads = h264Frame(size, key, st)
		} else {
			payloads = vp8Frame(size, key, st, uint16(frame)&0x7fff)
		}
		ts := tsBase + uint32(now.Sub(start).Seconds()*90000)
		for i, pl := range payloads {
			pkt.Header = rtp.Header{Version: 2, Marker: i == len(payloads)-1, SequenceNumber: seq, Timestamp: ts}
			pkt.Payload = pl
			seq++
			if p.video.WriteRTP(&pkt) != nil {
				continue // closing, or the socket refused it: a loss like any other
			}
			p.packets.Add(1)
			p.sentBits.Add(uint64(8 * len(pl)))
		}
		p.frames.Add(1)
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
	}
}

// sendAudio sends a 20 ms Opus packet every 20 ms.
func (p *publisher) sendAudio() {
	defer p.media.Done()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	seq, tsBase := uint16(rand.Uint32()), rand.Uint32()
	var pkt rtp.Packet
	for frame := uint32(0); ; frame++ {
		now := time.Now()
		pkt.Header = rtp.Header{Version: 2, Marker: frame == 0, SequenceNumber: seq,
			Timestamp: tsBase + uint32(now.Sub(start).Seconds()*48000)}
		pkt.Payload = opusFrame(stamp{sentNanos: now.UnixNano(), frame: frame})
		seq++
		if p.audio.WriteRTP(&pkt) == nil {
			p.packets.Add(1)
			p.sentBits.Add(uint64(8 * len(pkt.Payload)))
		}
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
	}
}

// stopMedia stops sending.
func (p *publisher) stopMedia() {
	p.stopOnce.Do(func() { close(p.stop) })
	p.media.Wait()
}

// close stops sending, ends the broadcast (DELETE /room/live or the WHIP
// resource) and closes the peer connection.
func (p *publisher) close(ctx context.Context) error {
	p.stopMedia()
	var err error
	switch {
	case p.location != "":
		err = p.c.deleteResource(ctx, p.location, p.email)
	case p.roomStarted:
		err = p.c.endBroadcast(ctx, p.email)
	}
	if p.ws != nil {
		p.ws.close()
	}
	if cerr := p.pc.Close(); err == nil && cerr != nil {
		err = cerr
	}
	p.rtcp.Wait()
	return err
}
