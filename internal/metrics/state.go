package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// state is the collector of what is read at scrape time.
type state struct {
	src Sources
}

func desc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, nil, nil)
}

var (
	descRooms     = desc("onair_rooms", "Live rooms (broadcasts) held by this process.")
	descViewers   = desc("onair_viewers", "Viewers in this process's rooms.")
	descSessions  = desc("onair_sessions", "Signalling sessions (WebSocket, WHIP, WHEP) bound to a presenter or a viewer.")
	descPipelines = desc("onair_media_pipelines", "The media engine's pipelines (one per broadcast).")
	descEndpoints = desc("onair_media_endpoints", "The media engine's endpoints (one per presenter, viewer and recorder).")

	descPacketsIn  = desc("onair_media_packets_in_total", "RTP packets received from presenters.")
	descPacketsOut = desc("onair_media_packets_out_total", "RTP packets sent to viewers.")
	descBytesIn    = desc("onair_media_bytes_in_total", "RTP bytes (header and payload) received from presenters.")
	descBytesOut   = desc("onair_media_bytes_out_total", "RTP bytes (header and payload) sent to viewers.")
	descDropped    = desc("onair_media_packets_dropped_total", "Packets dropped for slow viewers and recorders whose queue was full.")
	descNACKs      = desc("onair_media_nacks_total", "Retransmissions asked for by viewers (NACKed packets).")
	descPLIs       = desc("onair_media_plis_total", "Keyframe requests: PLI and FIR from viewers, and PLIs sent to presenters.")
	descSwitches   = desc("onair_media_layer_switches_total", "Simulcast viewers' switches from one layer to another.")
	descDuplicates = desc("onair_media_packets_duplicate_total", "Presenters' packets dropped on arrival as copies of packets already forwarded (a browser's RTX padding, a relay's replay after failover).")

	descCPU        = desc("onair_media_cpu_percent", "The media engine's CPU use at the last sample, in percent of the whole machine.")
	descMemory     = desc("onair_media_memory_percent", "The media engine's resident memory at the last sample, in percent of the machine's.")
	descOverloaded = desc("onair_media_overloaded", "1 while the media engine is over a hard limit and new broadcasts are refused.")

	descWebhookQueue = desc("onair_webhook_queue", "Webhook events waiting or being delivered.")

	descHLSViewers = desc("onair_hls_viewers", "HLS clients that asked for a playlist in the last 10 s (apart from onair_viewers, the WebRTC viewers).")
	descHLSMuxers  = desc("onair_hls_muxers", "Rooms with a running HLS muxer.")
)

func (s *state) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRooms, descViewers, descSessions, descPipelines, descEndpoints,
		descPacketsIn, descPacketsOut, descBytesIn, descBytesOut, descDropped, descNACKs, descPLIs,
		descSwitches, descDuplicates, descCPU, descMemory, descOverloaded, descWebhookQueue, descHLSViewers, descHLSMuxers} {
		ch <- d
	}
}

func (s *state) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	if s.src.Domain != nil {
		c := s.src.Domain.Counts()
		gauge(descRooms, float64(c.Rooms))
		gauge(descViewers, float64(c.Viewers))
		gauge(descSessions, float64(c.Sessions))
		gauge(descPipelines, float64(c.Pipelines))
		gauge(descEndpoints, float64(c.Endpoints))
	}
	if s.src.Engine != nil {
		t := s.src.Engine.Traffic()
		counter(descPacketsIn, t.PacketsIn)
		counter(descPacketsOut, t.PacketsOut)
		counter(descBytesIn, t.BytesIn)
		counter(descBytesOut, t.BytesOut)
		counter(descDropped, t.PacketsDropped)
		counter(descNACKs, t.NACKs)
		counter(descPLIs, t.PLIs)
		counter(descSwitches, t.LayerSwitches)
		counter(descDuplicates, t.PacketsDuplicate)
	}
	if s.src.Usage != nil {
		if u, ok := s.src.Usage(); ok {
			gauge(descCPU, u.CPUPercent)
			gauge(descMemory, u.MemoryPercent)
		}
	}
	if s.src.Overloaded != nil {
		v := 0.0
		if s.src.Overloaded() != nil {
			v = 1
		}
		gauge(descOverloaded, v)
	}
	if s.src.WebhookQueue != nil {
		gauge(descWebhookQueue, float64(s.src.WebhookQueue()))
	}
	if s.src.HLS != nil {
		v, m := s.src.HLS()
		gauge(descHLSViewers, float64(v))
		gauge(descHLSMuxers, float64(m))
	}
}
