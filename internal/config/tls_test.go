package config

import (
	"io"
	"strings"
	"testing"
)

func loadTLS(t *testing.T, args []string, env map[string]string) (Config, error) {
	t.Helper()
	return Load(args, func(k string) string { return env[k] }, io.Discard)
}

func TestTLSOffByDefault(t *testing.T) {
	c, err := loadTLS(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.TLS() || c.TLSCert != "" || c.TLSKey != "" || c.TLSSelfSigned || c.HTTPRedirectAddr != "" {
		t.Errorf("plain HTTP must be the default, got %+v", c)
	}
}

func TestTLSFromFlagsAndEnv(t *testing.T) {
	c, err := loadTLS(t, []string{"-tls-cert", "/c.pem", "-tls-key", "/k.pem", "-http-redirect-addr", ":80"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.TLS() || c.TLSCert != "/c.pem" || c.TLSKey != "/k.pem" || c.HTTPRedirectAddr != ":80" {
		t.Errorf("flags: %+v", c)
	}

	c, err = loadTLS(t, nil, map[string]string{"ONAIR_TLS_CERT": "/e.pem", "ONAIR_TLS_KEY": "/ek.pem"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.TLS() || c.TLSCert != "/e.pem" || c.TLSKey != "/ek.pem" {
		t.Errorf("env: %+v", c)
	}

	c, err = loadTLS(t, []string{"-tls-cert", "/flag.pem"}, map[string]string{"ONAIR_TLS_CERT": "/e.pem", "ONAIR_TLS_KEY": "/ek.pem"})
	if err != nil {
		t.Fatal(err)
	}
	if c.TLSCert != "/flag.pem" {
		t.Errorf("the flag must win over the environment, got %q", c.TLSCert)
	}

	c, err = loadTLS(t, nil, map[string]string{"ONAIR_TLS_SELF_SIGNED": "true"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.TLS() || !c.TLSSelfSigned {
		t.Errorf("ONAIR_TLS_SELF_SIGNED: %+v", c)
	}
}

func TestTLSRejectsNonsense(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"cert without key", []string{"-tls-cert", "/c.pem"}, "-tls-cert needs -tls-key"},
		{"key without cert", []string{"-tls-key", "/k.pem"}, "-tls-key needs -tls-cert"},
		{"both kinds", []string{"-tls-self-signed", "-tls-cert", "/c.pem", "-tls-key", "/k.pem"}, "exclude each other"},
		{"redirect without TLS", []string{"-http-redirect-addr", ":80"}, "needs -tls-cert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadTLS(t, tc.args, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
}
