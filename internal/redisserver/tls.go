package redisserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TLSCerts is a throw-away certificate authority with a server certificate
// (for 127.0.0.1, ::1 and localhost) and a client certificate, written as
// PEM files into a test's temporary directory.
type TLSCerts struct {
	// CAFile, CertFile and KeyFile are the CA certificate and the server's
	// certificate and key, as given to redis-server by [WithTLS].
	CAFile, CertFile, KeyFile string
	// ClientCertFile and ClientKeyFile are a client certificate signed by
	// the CA, for tests of tls-auth-clients yes.
	ClientCertFile, ClientKeyFile string
	// CAPool holds the CA certificate, for clients' RootCAs.
	CAPool *x509.CertPool
	// ClientCert is the client certificate with its key.
	ClientCert tls.Certificate
}

// NewTLSCerts makes a CA, a server and a client certificate (ECDSA P-256,
// valid from an hour ago for a day) and writes them into a t.TempDir(). It
// fails the test when anything goes wrong.
func NewTLSCerts(t testing.TB) *TLSCerts {
	t.Helper()
	c, err := newTLSCerts(t.TempDir())
	if err != nil {
		t.Fatalf("redisserver: making TLS certificates: %v", err)
	}
	return c
}

// ClientConfig returns a TLS client configuration that trusts the CA,
// verifies the server name 127.0.0.1 and presents the client certificate
// (redis-server ignores it under tls-auth-clients no). Use it as
// redis.Options.TLSConfig; each call returns a new value.
func (c *TLSCerts) ClientConfig() *tls.Config {
	return &tls.Config{
		RootCAs:      c.CAPool,
		ServerName:   "127.0.0.1",
		Certificates: []tls.Certificate{c.ClientCert},
		MinVersion:   tls.VersionTLS12,
	}
}

func newTLSCerts(dir string) (*TLSCerts, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "redisserver test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}

	leaf := func(cn string, usage x509.ExtKeyUsage, withNames bool) ([]byte, *ecdsa.PrivateKey, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		if withNames {
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return nil, nil, fmt.Errorf("%s certificate: %w", cn, err)
		}
		return der, key, nil
	}
	srvDER, srvKey, err := leaf("redisserver test server", x509.ExtKeyUsageServerAuth, true)
	if err != nil {
		return nil, err
	}
	cliDER, cliKey, err := leaf("redisserver test client", x509.ExtKeyUsageClientAuth, false)
	if err != nil {
		return nil, err
	}

	c := &TLSCerts{
		CAFile:         filepath.Join(dir, "ca.crt"),
		CertFile:       filepath.Join(dir, "server.crt"),
		KeyFile:        filepath.Join(dir, "server.key"),
		ClientCertFile: filepath.Join(dir, "client.crt"),
		ClientKeyFile:  filepath.Join(dir, "client.key"),
		CAPool:         x509.NewCertPool(),
	}
	c.CAPool.AddCert(ca)
	if err := writePEM(c.CAFile, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	if err := writePEM(c.CertFile, "CERTIFICATE", srvDER); err != nil {
		return nil, err
	}
	if err := writeKey(c.KeyFile, srvKey); err != nil {
		return nil, err
	}
	if err := writePEM(c.ClientCertFile, "CERTIFICATE", cliDER); err != nil {
		return nil, err
	}
	if err := writeKey(c.ClientKeyFile, cliKey); err != nil {
		return nil, err
	}
	if c.ClientCert, err = tls.LoadX509KeyPair(c.ClientCertFile, c.ClientKeyFile); err != nil {
		return nil, err
	}
	return c, nil
}

// serial returns a random 128-bit certificate serial number.
func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128)) // crypto/rand never fails (Go 1.24+)
	return n
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "PRIVATE KEY", der)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
