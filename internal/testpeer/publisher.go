package testpeer

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Payload types the test peers offer.
const (
	vp8PT  = 96
	opusPT = 111
)

// RTP timestamps of frame 0 and audio packet 0.
const (
	videoTSBase = 1_000_000
	audioTSBase = 2_000_000
)

// PublisherOptions tune a Publisher.
type PublisherOptions struct {
	// KeyframeEvery is the number of frames between periodic keyframes
	// (default 60, two seconds); negative: only the first frame and those
	// asked for by PLI or FIR are keyframes.
	KeyframeEvery int
	// VideoSeqStart is the first video sequence number (default 65000, so
	// that sequence numbers wrap within the first seconds).
	VideoSeqStart uint16
	// Simulcast sends the video as three RID layers, l, m and h
	// (simulcast.go), as a browser or an encoder does.
	Simulcast bool
}

// Publisher is a presenter's media: a sendonly VP8 + Opus peer that sends
// synthetic frames (FrameBytes) at 30 fps and Opus packets (AudioBytes) at 50
// per second, from when it is connected until Close. Every PLI or FIR it receives
// makes its next frame a keyframe.
type Publisher struct {
	*peer
	opts                     PublisherOptions
	videoPT, audioPT         uint8
	packetize                func(frame []byte, key bool) [][]byte // a frame's RTP payloads
	video, audio             *webrtc.TrackLocalStaticRTP
	videoSender, audioSender *webrtc.RTPSender
	sc                       *simulcast // with Simulcast

	forceKey                        atomic.Bool
	plis, firs                      atomic.Uint64
	frames, keyframes, audioPackets atomic.Uint64
	videoPackets                    atomic.Uint64
	stop                            chan struct{}
	wg                              sync.WaitGroup
	closeOnce                       sync.Once
}

// PublisherStats are what a Publisher has sent and received.
type PublisherStats struct {
	Frames, Keyframes, VideoPackets, AudioPackets uint64
	PLIs, FIRs                                    uint64
}

func videoCodec() webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeVP8, ClockRate: VideoClockRate,
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}},
		},
		PayloadType: vp8PT,
	}
}

func audioCodec() webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1",
		},
		PayloadType: opusPT,
	}
}

// newAPIParts returns a media engine with VP8 and Opus and an interceptor
// registry with NACK (generator and responder) and RTCP reports.
func newAPIParts() (*webrtc.MediaEngine, *interceptor.Registry, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(videoCodec(), webrtc.RTPCodecTypeVideo); err != nil {
		return nil, nil, err
	}
	if err := m.RegisterCodec(audioCodec(), webrtc.RTPCodecTypeAudio); err != nil {
		return nil, nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureNack(m, ir); err != nil {
		return nil, nil, err
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, nil, err
	}
	return m, ir, nil
}

// NewPublisher makes a publisher, which starts sending once negotiated and
// connected.
func NewPublisher(opts PublisherOptions) (*Publisher, error) {
	m, ir, err := newAPIParts()
	if err != nil {
		return nil, err
	}
	return newPublisher(opts, m, ir, videoCodec(), audioCodec(), func(frame []byte, _ bool) [][]byte {
		return packetize(frame)
	})
}

// newPublisher makes a publisher of video and audio in the codecs given,
// whose frames packetize turns into RTP payloads.
func newPublisher(opts PublisherOptions, m *webrtc.MediaEngine, ir *interceptor.Registry,
	video, audio webrtc.RTPCodecParameters, packetize func(frame []byte, key bool) [][]byte) (*Publisher, error) {
	if opts.KeyframeEvery == 0 {
		opts.KeyframeEvery = 60
	}
	if opts.VideoSeqStart == 0 {
		opts.VideoSeqStart = 65000
	}
	if opts.Simulcast {
		if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
			return nil, err
		}
	}
	pr, err := newPeer(m, ir)
	if err != nil {
		return nil, err
	}
	p := &Publisher{peer: pr, opts: opts, stop: make(chan struct{}),
		videoPT: uint8(video.PayloadType), audioPT: uint8(audio.PayloadType), packetize: packetize}
	fail := func(err error) (*Publisher, error) {
		pr.close()
		return nil, err
	}
	if opts.Simulcast {
		if err := p.addLayers(video.RTPCodecCapability); err != nil {
			return fail(err)
		}
		p.video = p.sc.layers[0]
	} else if p.video, err = webrtc.NewTrackLocalStaticRTP(video.RTPCodecCapability, "video", "testpeer"); err != nil {
		return fail(err)
	}
	p.audio, err = webrtc.NewTrackLocalStaticRTP(audio.RTPCodecCapability, "audio", "testpeer")
	if err != nil {
		return fail(err)
	}
	sendonly := webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}
	vt, err := pr.pc.AddTransceiverFromTrack(p.video, sendonly)
	if err != nil {
		return fail(err)
	}
	if p.sc != nil {
		for _, l := range p.sc.layers[1:] {
			if err := vt.Sender().AddEncoding(l); err != nil {
				return fail(err)
			}
		}
	}
	at, err := pr.pc.AddTransceiverFromTrack(p.audio, sendonly)
	if err != nil {
		return fail(err)
	}
	p.videoSender, p.audioSender = vt.Sender(), at.Sender()
	p.wg.Add(3)
	go func() { defer p.wg.Done(); p.readVideoRTCP() }()
	go func() { defer p.wg.Done(); p.readRTCP(p.audioSender) }()
	go func() { defer p.wg.Done(); p.send() }()
	return p, nil
}

// readRTCP counts keyframe requests until the connection closes.
func (p *Publisher) readRTCP(s *webrtc.RTPSender) {
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			switch pkt.(type) {
			case *rtcp.PictureLossIndication:
				p.plis.Add(1)
				p.forceKey.Store(true)
			case *rtcp.FullIntraRequest:
				p.firs.Add(1)
				p.forceKey.Store(true)
			}
		}
	}
}

// send is the media clock: a frame every 1/30 s, an audio packet every 20 ms,
// from the moment the connection is up (before, pion would drop them), so
// that frame 0, a keyframe, and the first sequence numbers reach the server.
func (p *Publisher) send() {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := p.WaitConnected(ctx)
	cancel()
	if err != nil {
		return
	}
	frameTick := time.NewTicker(time.Second / FrameRate)
	defer frameTick.Stop()
	audioTick := time.NewTicker(time.Second / AudioRate)
	defer audioTick.Stop()
	var n, k uint32
	vseq, aseq := p.opts.VideoSeqStart, uint16(65500)
	for {
		select {
		case <-p.stop:
			return
		case <-frameTick.C:
			if p.sc != nil {
				p.sendLayers(n)
				n++
				continue
			}
			forced := p.forceKey.Swap(false)
			key := forced || n == 0 || (p.opts.KeyframeEvery > 0 && n%uint32(p.opts.KeyframeEvery) == 0)
			payloads := p.packetize(FrameBytes(n, key), key)
			for i, pl := range payloads {
				pkt := &rtp.Packet{Header: rtp.Header{
					Version: 2, PayloadType: p.videoPT, SequenceNumber: vseq,
					Timestamp: videoTSBase + n*frameTicks, Marker: i == len(payloads)-1,
				}, Payload: pl}
				_ = p.video.WriteRTP(pkt)
				vseq++
				p.videoPackets.Add(1)
			}
			p.frames.Add(1)
			if key {
				p.keyframes.Add(1)
			}
			n++
		case <-audioTick.C:
			pkt := &rtp.Packet{Header: rtp.Header{
				Version: 2, PayloadType: p.audioPT, SequenceNumber: aseq,
				Timestamp: audioTSBase + k*audioTicks, Marker: k == 0,
			}, Payload: AudioBytes(k)}
			_ = p.audio.WriteRTP(pkt)
			aseq++
			k++
			p.audioPackets.Add(1)
		}
	}
}

// Stats reports what the publisher has sent and the keyframe requests it got.
func (p *Publisher) Stats() PublisherStats {
	return PublisherStats{
		Frames: p.frames.Load(), Keyframes: p.keyframes.Load(),
		VideoPackets: p.videoPackets.Load(), AudioPackets: p.audioPackets.Load(),
		PLIs: p.plis.Load(), FIRs: p.firs.Load(),
	}
}

// Close stops sending, closes the connection and waits for the publisher's
// goroutines.
func (p *Publisher) Close() {
	p.closeOnce.Do(func() {
		close(p.stop)
		p.peer.close()
		p.wg.Wait()
	})
}
