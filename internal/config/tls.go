package config

import "errors"

// TLS reports whether onair serves HTTPS and WSS rather than plain HTTP.
func (c Config) TLS() bool { return c.TLSCert != "" || c.TLSKey != "" || c.TLSSelfSigned }

// checkTLS rejects TLS settings that cannot mean anything, saying what to do.
func (c Config) checkTLS() error {
	switch {
	case c.TLSSelfSigned && (c.TLSCert != "" || c.TLSKey != ""):
		return errors.New("-tls-self-signed and -tls-cert/-tls-key exclude each other: give your certificate, or ask for a throwaway one")
	case c.TLSCert != "" && c.TLSKey == "":
		return errors.New("-tls-cert needs -tls-key (ONAIR_TLS_KEY): the PEM file of the certificate's private key")
	case c.TLSKey != "" && c.TLSCert == "":
		return errors.New("-tls-key needs -tls-cert (ONAIR_TLS_CERT): the PEM file of the certificate")
	case c.HTTPRedirectAddr != "" && !c.TLS():
		return errors.New("-http-redirect-addr redirects to HTTPS: it needs -tls-cert and -tls-key, or -tls-self-signed")
	}
	return nil
}
