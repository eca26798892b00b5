package config

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
)

// Record is where broadcasts are recorded and who is told of each file.
type Record struct {
	// RecordDir, when set, records every broadcast into this directory.
	RecordDir string
	// RecordHookURL is posted each finished recording (the upload
	// notification).
	RecordHookURL string
}

func (r *Record) register(fs *flag.FlagSet) {
	fs.StringVar(&r.RecordDir, "record-dir", "", "record every broadcast into this directory: MP4 for H.264, VP9 and AV1, WebM for VP8 (default: off)")
	fs.StringVar(&r.RecordHookURL, "record-hook-url", "", "POST each finished recording's description (JSON) to this URL (needs -record-dir)")
}

// check rejects settings that cannot work, saying what to do.
func (r Record) check() error {
	if r.RecordHookURL == "" {
		return nil
	}
	if r.RecordDir == "" {
		return errors.New("-record-hook-url needs -record-dir: nothing is recorded without it")
	}
	u, err := url.Parse(r.RecordHookURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-record-hook-url: %q is not an http or https URL", r.RecordHookURL)
	}
	return nil
}
