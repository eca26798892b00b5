package app

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/httpapi"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/metrics"
	"github.com/onair-live/onair/internal/record"
)

// recording connects the recorder (internal/record) to the domain, which
// decides when to record, and to the admin API, which lists and serves the
// files. A nil *recording is recording turned off.
type recording struct {
	rec *record.Recorder
}

// newRecording makes the recorder if -record-dir is set. outcome hears
// what became of each recording (metrics.Recording* outcomes).
func newRecording(cfg config.Config, log *slog.Logger, outcome func(string)) (*recording, error) {
	if cfg.RecordDir == "" {
		return nil, nil
	}
	rec, err := record.New(record.Config{Dir: cfg.RecordDir, HookURL: cfg.RecordHookURL, Logger: log,
		OnOutcome: func(o string) { outcome(metricsOutcome(o)) }})
	if err != nil {
		return nil, err
	}
	log.Info("recording broadcasts", "dir", cfg.RecordDir, "hook", cfg.RecordHookURL != "")
	return &recording{rec: rec}, nil
}

// metricsOutcome maps a recorder's outcome to the metrics' name for it.
func metricsOutcome(o string) string {
	switch o {
	case record.OutcomeFinished:
		return metrics.RecordingFinished
	case record.OutcomeFailed:
		return metrics.RecordingFailed
	case record.OutcomeUploaded:
		return metrics.RecordingUploaded
	}
	return metrics.RecordingUploadFailed
}

// factory is live.Options.Recorder: nil when recording is off.
func (r *recording) factory() func(live.RecordingStart) (live.RecordingSink, error) {
	if r == nil {
		return nil
	}
	return func(s live.RecordingStart) (live.RecordingSink, error) {
		return sink{r.rec.Start(record.Info{RoomID: s.RoomID, Title: s.Title, ProfileURL: s.ProfileURL,
			Presenter: s.Presenter, SessionID: s.SessionID})}, nil
	}
}

// sink is a record.Recording as the domain sees it.
type sink struct{ *record.Recording }

func (s sink) Result() (live.Recording, bool) {
	res, ok := s.Recording.Result()
	return live.Recording{Path: res.Path, Bytes: res.Bytes, Duration: res.Duration, Codecs: res.Codecs}, ok
}

// api is httpapi.Config.Recordings: nil when recording is off.
func (r *recording) api() httpapi.Recordings {
	if r == nil {
		return nil
	}
	return recordings{r.rec}
}

type recordings struct{ rec *record.Recorder }

func (l recordings) List() ([]httpapi.Recording, error) {
	list, err := l.rec.List()
	if err != nil {
		return nil, err
	}
	out := make([]httpapi.Recording, len(list))
	for i, e := range list {
		out[i] = httpapi.Recording{Name: e.Name, RoomID: e.RoomID, Size: e.Size, Start: e.Start,
			Duration: e.Duration, Active: e.Recording}
	}
	return out, nil
}

func (l recordings) Open(name string) (httpapi.RecordingFile, error) {
	f, err := l.rec.Open(name)
	if errors.Is(err, record.ErrBadName) {
		return nil, fs.ErrInvalid
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

// close waits for the upload hooks in flight, until ctx ends.
func (r *recording) close(ctx context.Context) {
	if r != nil {
		r.rec.Close(ctx)
	}
}
