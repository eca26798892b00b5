package record

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/onair-live/onair/internal/waitgroup"
)

// hookBody is what the upload hook is posted: the broadcast's fields, and
// the file's.
type hookBody struct {
	LiveSessionID string   `json:"liveSessionId"`
	RoomID        string   `json:"roomId"`
	Title         string   `json:"title"`
	ProfileURL    string   `json:"profileUrl"`
	Path          string   `json:"path"`
	Name          string   `json:"name"`
	Size          int64    `json:"size"`
	Duration      float64  `json:"duration"` // seconds
	Codecs        []string `json:"codecs"`
}

// uploader posts upload hooks, each from a goroutine of its own that retries
// with exponential backoff; close waits for them.
type uploader struct {
	url      string
	outcome  func(string)
	client   *http.Client
	attempts int
	backoff  time.Duration
	timeout  time.Duration
	log      *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newUploader(cfg Config, log *slog.Logger) *uploader {
	u := &uploader{url: cfg.HookURL, outcome: cfg.OnOutcome, client: cfg.HTTPClient, attempts: cfg.HookAttempts,
		backoff: cfg.HookBackoff, timeout: cfg.HookTimeout, log: log}
	if u.client == nil {
		u.client = &http.Client{}
	}
	if u.attempts <= 0 {
		u.attempts = 8
	}
	if u.backoff <= 0 {
		u.backoff = time.Second
	}
	if u.timeout <= 0 {
		u.timeout = 10 * time.Second
	}
	u.ctx, u.cancel = context.WithCancel(context.Background())
	return u
}

// post sends the hook for a finished file without waiting.
func (u *uploader) post(info Info, res Result) {
	body, err := json.Marshal(hookBody{
		LiveSessionID: info.SessionID, RoomID: info.RoomID, Title: info.Title, ProfileURL: info.ProfileURL,
		Path: res.Path, Name: res.Name, Size: res.Bytes, Duration: res.Duration.Seconds(), Codecs: res.Codecs,
	})
	if err != nil {
		u.log.Error("upload hook not sent", "room", info.RoomID, "err", err)
		return
	}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		u.deliver(info.RoomID, res.Path, body)
	}()
}

// deliver posts body until the hook answers 2xx, refuses it (a 4xx other
// than 408 and 429), the attempts run out, or the server shuts down.
func (u *uploader) deliver(room, path string, body []byte) {
	log := u.log.With("room", room, "file", path, "url", u.url)
	wait := u.backoff
	for attempt := 1; ; attempt++ {
		status, err := u.postOnce(body)
		switch {
		case err == nil && status/100 == 2:
			log.Info("upload hook delivered", "status", status, "attempt", attempt)
			u.outcome(OutcomeUploaded)
			return
		case err == nil && status/100 == 4 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests:
			log.Error("upload hook refused", "status", status, "attempt", attempt)
			u.outcome(OutcomeUploadFailed)
			return
		}
		if err == nil {
			err = fmt.Errorf("status %d", status)
		}
		if attempt >= u.attempts {
			log.Error("upload hook failed, giving up", "attempts", attempt, "err", err)
			u.outcome(OutcomeUploadFailed)
			return
		}
		log.Warn("upload hook failed, will retry", "attempt", attempt, "retryIn", wait.String(), "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-u.ctx.Done():
			t.Stop()
			log.Error("upload hook abandoned: shutting down", "attempts", attempt)
			u.outcome(OutcomeUploadFailed)
			return
		}
		wait = min(2*wait, time.Minute)
	}
}

func (u *uploader) postOnce(body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(u.ctx, u.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := u.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// close waits for the hooks in flight until done is closed, then cancels
// those still trying and waits for them to stop.
func (u *uploader) close(done <-chan struct{}) {
	waitgroup.Await(&u.wg, done, u.cancel)
	u.cancel()
	u.client.CloseIdleConnections()
}
